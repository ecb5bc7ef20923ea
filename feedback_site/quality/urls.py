"""Pages of the quality app."""

from django.urls import path

from feedback_site.quality import views

urlpatterns = [
    path("projects/<int:project_id>/quality/", views.quality_dashboard, name="project-quality"),
    path("projects/<int:project_id>/quality/me/", views.my_statistics, name="project-my-stats"),
    path("projects/<int:project_id>/quality/score-pairs/", views.quality_score_pairs, name="project-quality-score"),
    path("projects/<int:project_id>/quality/adjudication/", views.adjudication_list, name="project-adjudication"),
    path("projects/<int:project_id>/quality/adjudication/<int:pair_id>/", views.adjudicate, name="project-adjudicate"),
]
