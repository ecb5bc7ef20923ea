"""Page routes of the snapshots app."""

from django.urls import path

from feedback_site.snapshots import conversation_views, views

urlpatterns = [
    path("projects/<int:project_id>/snapshots/", views.project_snapshots, name="project-snapshots"),
    path("projects/<int:project_id>/snapshots/ratings/queue", views.rating_tasks_create, name="project-rating-tasks"),
    path("projects/<int:project_id>/snapshots/ratings/freeze", views.rating_snapshot_create, name="project-rating-snapshot"),
    path(
        "projects/<int:project_id>/snapshots/conversations/queue",
        conversation_views.conversation_tasks_create,
        name="project-conversation-tasks",
    ),
    path(
        "projects/<int:project_id>/snapshots/conversations/freeze",
        conversation_views.conversation_snapshot_create,
        name="project-conversation-snapshot",
    ),
]
