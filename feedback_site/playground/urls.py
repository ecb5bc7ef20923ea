"""Pages of the playground."""

from django.urls import path

from feedback_site.playground import views

urlpatterns = [
    path("projects/<int:project_id>/playground/", views.playground_page, name="project-playground"),
]
