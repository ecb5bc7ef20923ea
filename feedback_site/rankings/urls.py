"""Pages of rankings."""

from django.urls import path

from feedback_site.rankings import views

urlpatterns = [
    path("projects/<int:project_id>/rank/", views.rank, name="rank"),
]
