"""REST API v1 routes of the evaluation app and the model registry (mounted under /api/v1/)."""

from django.urls import path

from feedback_site.evaluation import api
from feedback_site.registry import api as registry_api

urlpatterns = [
    path("projects/<int:project_id>/versions/", registry_api.version_list, name="api-versions"),
    path("projects/<int:project_id>/versions/rollback", registry_api.version_rollback, name="api-version-rollback"),
    path("projects/<int:project_id>/versions/history", registry_api.pointer_history, name="api-pointer-history"),
    path("versions/<int:version_id>/", registry_api.version_detail, name="api-version"),
    path("versions/<int:version_id>/promote", registry_api.version_promote, name="api-version-promote"),
    path("versions/<int:version_id>/download", registry_api.version_download, name="api-version-download"),
    path("projects/<int:project_id>/evaluations/", api.run_list, name="api-evaluations"),
    path("evaluations/<int:run_id>/", api.run_detail, name="api-evaluation"),
    path("projects/<int:project_id>/eval-prompts/", api.eval_prompts, name="api-eval-prompts"),
    path("projects/<int:project_id>/heldout-pairs/", api.heldout_pairs, name="api-heldout-pairs"),
    path("projects/<int:project_id>/adversarial-prompts/", api.adversarial_list, name="api-adversarial-prompts"),
    path("adversarial-prompts/<int:prompt_id>/", api.adversarial_detail, name="api-adversarial-prompt"),
    path("projects/<int:project_id>/review/", api.review_list, name="api-evaluation-review"),
    path("evaluation-samples/<int:sample_id>/review", api.sample_review, name="api-evaluation-sample-review"),
    path("projects/<int:project_id>/leaderboard", api.leaderboard, name="api-leaderboard"),
]
