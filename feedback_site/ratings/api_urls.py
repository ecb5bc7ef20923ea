"""REST API v1 routes of ratings (mounted under /api/v1/)."""

from django.urls import path

from feedback_site.ratings import api

urlpatterns = [
    path("projects/<int:project_id>/rating-tasks/", api.tasks_create, name="api-rating-tasks"),
    path("projects/<int:project_id>/ratings/next", api.next_task, name="api-rating-next"),
    path("projects/<int:project_id>/ratings/progress", api.progress, name="api-rating-progress"),
    path("rating-assignments/<int:assignment_id>/submit", api.submit, name="api-rating-submit"),
    path("rating-assignments/<int:assignment_id>/skip", api.skip, name="api-rating-skip"),
    path("rating-assignments/<int:assignment_id>/renew", api.renew, name="api-rating-renew"),
    path("projects/<int:project_id>/rating-snapshots/", api.snapshots, name="api-rating-snapshots"),
    path("rating-snapshots/<int:snapshot_id>/download", api.snapshot_download, name="api-rating-snapshot-download"),
]
