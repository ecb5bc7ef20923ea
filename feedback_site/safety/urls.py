"""Pages of the safety app."""

from django.urls import path

from feedback_site.safety import views

urlpatterns = [
    path("projects/<int:project_id>/safety/", views.safety_page, name="project-safety"),
    path("projects/<int:project_id>/safety/screens/<int:screen_id>/<str:decision>/", views.screen_decide, name="safety-decide"),
]
