"""API plumbing shared by every app: error mapping, project lookup, health."""

from __future__ import annotations

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from feedback_site.core.errors import NotFound, ServiceError
from feedback_site.core.permissions import require_role
from feedback_site.projects.models import Project


def exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        return Response({"error": exc.code, "detail": exc.message}, status=exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "error" not in response.data:
        detail = response.data.get("detail", response.data)
        response.data = {"error": getattr(exc, "default_code", "error"), "detail": detail}
    return response


def project_for(user, project_id: int, roles) -> Project:
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        raise NotFound("No such project.")
    require_role(user, project, roles)
    return project


@require_GET
def health(request):
    """The cheapest request the stack can answer: one `SELECT 1`. The load benchmark uses it as
    the ceiling that annotator requests are compared with."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return JsonResponse({"status": "ok"})
