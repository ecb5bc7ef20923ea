"""Page routes of the annotation app."""

from django.urls import path

from feedback_site.annotation import views

urlpatterns = [
    path("projects/<int:project_id>/annotate/", views.annotate, name="annotate"),
    path("projects/<int:project_id>/imports/", views.project_imports, name="project-imports"),
]
