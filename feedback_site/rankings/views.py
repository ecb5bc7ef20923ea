"""The annotator's ranking page: rendered once, driven by the API from rankings/rank.js."""

from __future__ import annotations

from django.shortcuts import render

from feedback_site.projects.permissions import ALL_ROLES
from feedback_site.projects.views import project_context, project_page


@project_page(ALL_ROLES)
def rank(request, project, role):
    return render(request, "rankings/rank.html", project_context(project, role))
