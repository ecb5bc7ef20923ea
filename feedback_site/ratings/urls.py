"""Pages of ratings."""

from django.urls import path

from feedback_site.ratings import views

urlpatterns = [
    path("projects/<int:project_id>/rate/", views.rate, name="rate"),
]
