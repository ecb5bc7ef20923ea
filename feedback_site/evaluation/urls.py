"""Pages of the evaluation app, and of the model registry (mounted here so the registry needs no
separate include in the site's urls.py)."""

from django.urls import path

from feedback_site.evaluation import views
from feedback_site.registry import views as registry_views

urlpatterns = [
    path("projects/<int:project_id>/versions/", views.project_versions, name="project-versions"),
    path("projects/<int:project_id>/versions/rollback/", registry_views.version_rollback, name="project-version-rollback"),
    path("versions/<int:version_id>/promote/", registry_views.version_promote, name="version-promote"),
    path("versions/<int:version_id>/download/", registry_views.version_download, name="version-download"),
    path("projects/<int:project_id>/evaluation/", views.project_evaluation, name="project-evaluation"),
    path("projects/<int:project_id>/evaluation/review/", views.review_list, name="evaluation-review"),
    path("projects/<int:project_id>/evaluation/adversarial/", views.adversarial_suite, name="evaluation-adversarial"),
    path("projects/<int:project_id>/leaderboard/", views.project_leaderboard, name="project-leaderboard"),
    path("evaluation/<int:run_id>/", views.run_detail, name="evaluation-run"),
    path("evaluation/samples/<int:sample_id>/review/", views.sample_review, name="evaluation-sample-review"),
]
