"""Page routes of the snapshots app."""

from django.urls import path

from feedback_site.snapshots import views

urlpatterns = [
    path("projects/<int:project_id>/snapshots/", views.project_snapshots, name="project-snapshots"),
    path("projects/<int:project_id>/snapshots/ratings/queue", views.rating_tasks_create, name="project-rating-tasks"),
    path("projects/<int:project_id>/snapshots/ratings/freeze", views.rating_snapshot_create, name="project-rating-snapshot"),
]
