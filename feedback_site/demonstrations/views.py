"""The annotator's demonstration page: rendered once, driven by the API from demonstrations/demonstrate.js."""

from __future__ import annotations

from django.shortcuts import render

from feedback_site.projects.permissions import ALL_ROLES
from feedback_site.projects.views import project_context, project_page


@project_page(ALL_ROLES)
def demonstrate(request, project, role):
    return render(request, "demonstrations/demonstrate.html", project_context(project, role))
