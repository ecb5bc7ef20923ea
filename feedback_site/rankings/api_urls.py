"""REST API v1 routes of rankings (mounted under /api/v1/)."""

from django.urls import path

from feedback_site.rankings import api

urlpatterns = [
    path("projects/<int:project_id>/ranking-tasks/", api.tasks_create, name="api-ranking-tasks"),
    path("projects/<int:project_id>/rankings/next", api.next_task, name="api-ranking-next"),
    path("projects/<int:project_id>/rankings/progress", api.progress, name="api-ranking-progress"),
    path("ranking-assignments/<int:assignment_id>/submit", api.submit, name="api-ranking-submit"),
    path("ranking-assignments/<int:assignment_id>/skip", api.skip, name="api-ranking-skip"),
    path("ranking-assignments/<int:assignment_id>/renew", api.renew, name="api-ranking-renew"),
]
