"""REST API v1 routes. Every route requires a token or a session unless noted."""

from django.urls import path

from feedback_site.annotation import api as annotation_api
from feedback_site.generation import api as generation_api
from feedback_site.overview import api as overview_api
from feedback_site.projects import api as projects_api
from feedback_site.snapshots import api as snapshots_api
from feedback_site.training import api as training_api

urlpatterns = [
    path("projects/", overview_api.project_list, name="api-projects"),
    path("projects/<int:project_id>/", projects_api.project_detail, name="api-project"),
    path("projects/<int:project_id>/progress", annotation_api.project_progress_view, name="api-project-progress"),
    path("projects/<int:project_id>/members/", projects_api.member_list, name="api-members"),
    path("projects/<int:project_id>/members/<int:user_id>/", projects_api.member_detail, name="api-member"),
    path("projects/<int:project_id>/guidelines/", projects_api.guideline_list, name="api-guidelines"),
    path("projects/<int:project_id>/imports/", annotation_api.import_list, name="api-imports"),
    path("projects/<int:project_id>/prompts/", annotation_api.prompt_list, name="api-prompts"),
    path("projects/<int:project_id>/judgments/", annotation_api.judgment_list, name="api-judgments"),
    path("projects/<int:project_id>/model-versions/", generation_api.model_version_list, name="api-model-versions"),
    path("projects/<int:project_id>/generation-runs/", generation_api.generation_run_list, name="api-generation-runs"),
    path("generation-runs/<int:run_id>/", generation_api.generation_run_detail, name="api-generation-run"),
    path("generation-runs/<int:run_id>/cancel", generation_api.generation_run_cancel, name="api-generation-run-cancel"),
    path("projects/<int:project_id>/assignments/next", annotation_api.assignment_next, name="api-assignment-next"),
    path("projects/<int:project_id>/my-progress", annotation_api.my_progress, name="api-my-progress"),
    path("assignments/<int:assignment_id>/judgment", annotation_api.judgment_submit, name="api-judgment"),
    path("assignments/<int:assignment_id>/skip", annotation_api.assignment_skip, name="api-skip"),
    path("assignments/<int:assignment_id>/renew", annotation_api.assignment_renew, name="api-renew"),
    path("pairs/<int:pair_id>/gold", annotation_api.pair_gold, name="api-pair-gold"),
    path("projects/<int:project_id>/members/<int:user_id>/pause", annotation_api.member_pause, name="api-member-pause"),
    path("projects/<int:project_id>/members/<int:user_id>/unpause", annotation_api.member_unpause, name="api-member-unpause"),
    path("projects/<int:project_id>/snapshots/", snapshots_api.snapshot_list, name="api-snapshots"),
    path("snapshots/<int:snapshot_id>/", snapshots_api.snapshot_detail, name="api-snapshot"),
    path("snapshots/<int:snapshot_id>/download", snapshots_api.snapshot_download, name="api-snapshot-download"),
    path("projects/<int:project_id>/training-runs/", training_api.training_run_list, name="api-training-runs"),
    path("training-runs/<int:run_id>/", training_api.training_run_detail, name="api-training-run"),
    path("training-runs/<int:run_id>/metrics", training_api.training_run_metrics, name="api-training-run-metrics"),
    path("training-runs/<int:run_id>/cancel", training_api.training_run_cancel, name="api-training-run-cancel"),
]
