"""Page routes of the generation app."""

from django.urls import path

from feedback_site.generation import views

urlpatterns = [
    path("projects/<int:project_id>/generate/", views.project_generate, name="project-generate"),
    path("generation/<int:run_id>/", views.run_detail, name="generation-run"),
    path("generation/<int:run_id>/cancel/", views.run_cancel, name="generation-run-cancel"),
]
