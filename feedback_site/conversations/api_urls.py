"""REST API v1 routes of conversations (mounted under /api/v1/)."""

from django.urls import path

from feedback_site.conversations import api

urlpatterns = [
    path("projects/<int:project_id>/conversation-tasks/", api.tasks_create, name="api-conversation-tasks"),
    path("projects/<int:project_id>/conversations/next", api.next_task, name="api-conversation-next"),
    path("projects/<int:project_id>/conversations/progress", api.progress, name="api-conversation-progress"),
    path("conversation-assignments/<int:assignment_id>/", api.state, name="api-conversation-state"),
    path("conversation-assignments/<int:assignment_id>/turn", api.turn, name="api-conversation-turn"),
    path("conversation-assignments/<int:assignment_id>/retry", api.retry, name="api-conversation-retry"),
    path("conversation-assignments/<int:assignment_id>/skip", api.skip, name="api-conversation-skip"),
    path("conversation-assignments/<int:assignment_id>/renew", api.renew, name="api-conversation-renew"),
    path("projects/<int:project_id>/conversation-snapshots/", api.snapshots, name="api-conversation-snapshots"),
    path("conversation-snapshots/<int:snapshot_id>/download", api.snapshot_download, name="api-conversation-snapshot-download"),
]
