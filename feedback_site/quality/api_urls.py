"""REST API v1 routes of the quality app (mounted under /api/v1/)."""

from django.urls import path

from feedback_site.quality import api

urlpatterns = [
    path("projects/<int:project_id>/quality/", api.quality_dashboard, name="api-quality-dashboard"),
    path("projects/<int:project_id>/quality/me/", api.quality_me, name="api-quality-me"),
    path("projects/<int:project_id>/quality/disagreements/", api.quality_disagreements, name="api-quality-disagreements"),
    path("projects/<int:project_id>/quality/score-pairs/", api.quality_score_pairs, name="api-quality-score-pairs"),
    path("pairs/<int:pair_id>/adjudication/", api.pair_adjudication, name="api-pair-adjudication"),
]
