"""REST API of the ops app: the detailed health of the stack (site admins)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.core import accounts
from feedback_site.core.errors import Forbidden, ServiceError
from feedback_site.ops import health


@extend_schema(
    request=None,
    responses={200: dict, 503: dict},
    summary="Detailed health: database, broker, workers, queue depths, active runs (site admins)",
)
@api_view(["GET"])
def health_details(request):
    """Each component's state with its latency; 503 when any of database, broker or workers is down.

    Workers are asked with a broadcast ping that waits at most `timeout` seconds (default 1, max 5).
    Unlike `/healthz` this is not for load balancers: it costs a broker round trip and a second.
    """
    if not accounts.is_site_admin(request.user):
        raise Forbidden("Only site admins can see the detailed health.")
    try:
        timeout = min(max(float(request.query_params.get("timeout", 1.0)), 0.1), 5.0)
    except ValueError:
        raise ServiceError("timeout must be a number of seconds") from None
    details = health.health_details(worker_timeout=timeout)
    return Response(details, status=200 if details["status"] == "ok" else 503)
