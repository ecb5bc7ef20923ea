"""Page routes of the snapshots app."""

from django.urls import path

from feedback_site.snapshots import views

urlpatterns = [
    path("projects/<int:project_id>/snapshots/", views.project_snapshots, name="project-snapshots"),
]
