"""The playground page: rendered once, then driven by the REST API from playground/playground.js."""

from __future__ import annotations

from django.shortcuts import render

from feedback_site.playground.services import SAMPLING_DEFAULTS
from feedback_site.projects.permissions import STAFF_ROLES
from feedback_site.projects.views import project_context, project_page
from feedback_site.registry.models import ModelKind, ModelVersion


@project_page(STAFF_ROLES)
def playground_page(request, project, role):
    versions = ModelVersion.objects.filter(project=project, kind=ModelKind.POLICY).order_by("-number")
    return render(
        request,
        "playground/playground.html",
        project_context(project, role, versions=versions, defaults=SAMPLING_DEFAULTS),
    )
