"""Pages of conversations."""

from django.urls import path

from feedback_site.conversations import views

urlpatterns = [
    path("projects/<int:project_id>/converse/", views.converse, name="converse"),
]
