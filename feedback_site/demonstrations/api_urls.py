"""REST API v1 routes of demonstrations (mounted under /api/v1/)."""

from django.urls import path

from feedback_site.demonstrations import api

urlpatterns = [
    path("projects/<int:project_id>/demonstration-tasks/", api.tasks_create, name="api-demo-tasks"),
    path("projects/<int:project_id>/demonstrations/next", api.next_task, name="api-demo-next"),
    path("demonstration-assignments/<int:assignment_id>/submit", api.submit, name="api-demo-submit"),
    path("demonstration-assignments/<int:assignment_id>/skip", api.skip, name="api-demo-skip"),
    path("projects/<int:project_id>/demonstration-snapshots/", api.snapshots, name="api-demo-snapshots"),
    path("demonstration-snapshots/<int:snapshot_id>/download", api.snapshot_download, name="api-demo-snapshot-download"),
]
