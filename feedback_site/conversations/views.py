"""The annotator's conversation page: rendered once, driven by the API from conversations/converse.js."""

from __future__ import annotations

from django.shortcuts import render

from feedback_site.projects.permissions import ALL_ROLES
from feedback_site.projects.views import project_context, project_page


@project_page(ALL_ROLES)
def converse(request, project, role):
    return render(request, "conversations/converse.html", project_context(project, role))
