"""The operations page for site admins (database, broker, workers, queue depths, active runs)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from feedback_site.core import accounts
from feedback_site.ops import health


@login_required
def ops_dashboard(request):
    """Site staff: database, broker and worker health, queue depths and every active run."""
    if not accounts.is_site_admin(request.user):
        raise PermissionDenied("Only site admins can see the operations dashboard.")
    details = health.health_details(worker_timeout=1.0)
    return render(request, "ops/ops.html", {"details": details, "queues": sorted(details["queues"].items())})
