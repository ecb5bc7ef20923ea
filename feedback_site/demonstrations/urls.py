"""Pages of demonstrations."""

from django.urls import path

from feedback_site.demonstrations import views

urlpatterns = [
    path("projects/<int:project_id>/demonstrate/", views.demonstrate, name="demonstrate"),
]
