"""Page routes of the training app."""

from django.urls import path

from feedback_site.training import views

urlpatterns = [
    path("projects/<int:project_id>/training/", views.project_training, name="project-training"),
    path("projects/<int:project_id>/models/", views.project_models, name="project-models"),
    path("training/<int:run_id>/", views.run_detail, name="training-run"),
    path("training/<int:run_id>/cancel/", views.run_cancel, name="training-run-cancel"),
]
