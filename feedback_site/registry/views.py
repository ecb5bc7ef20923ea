"""Pages of the model registry: promote / roll back, download. The lineage timeline
(`project-versions`) shows each version's latest evaluation, so it is evaluation's page
(`evaluation.views.project_versions`)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from feedback_site.core.errors import ServiceError
from feedback_site.projects.permissions import STAFF_ROLES
from feedback_site.projects.views import error_page, project_page
from feedback_site.registry import services
from feedback_site.registry.api import download_response


@login_required
@require_POST
def version_promote(request, version_id: int):
    try:
        version = services.version_get(version_id=version_id, actor=request.user)
        services.version_promote(version.project, version, request.user, reason=request.POST.get("reason", "")[:500])
    except ServiceError as error:
        return error_page(request, error)
    messages.success(request, f"{version.label} is now the current policy.")
    return redirect("project-versions", version.project_id)


@project_page(STAFF_ROLES)
@require_POST
def version_rollback(request, project, role):
    try:
        change = services.version_rollback(project, request.user, reason=request.POST.get("reason", "")[:500])
    except ServiceError as error:
        return error_page(request, error, project=project)
    messages.success(request, f"Rolled back: the current policy is {change.to_version.label} again.")
    return redirect("project-versions", project.pk)


@login_required
@require_GET
def version_download(request, version_id: int):
    try:
        version = services.version_get(version_id=version_id, actor=request.user)
        return download_response(version, request.user)
    except ServiceError as error:
        return error_page(request, error)
