"""REST API v1 routes of the closed loop (mounted under /api/v1/)."""

from django.urls import path

from feedback_site.loop import api

urlpatterns = [
    path("projects/<int:project_id>/simulated-annotators/", api.simulated_list, name="api-simulated-annotators"),
    path("simulated-annotators/<int:annotator_id>/runs", api.simulation_create, name="api-simulation-create"),
    path("projects/<int:project_id>/campaigns/", api.campaign_list, name="api-campaigns"),
    path("campaigns/<int:campaign_id>/", api.campaign_detail, name="api-campaign"),
    path("projects/<int:project_id>/rounds/", api.round_list, name="api-rounds"),
    path("rounds/<int:round_id>/", api.round_detail, name="api-round"),
    path("rounds/<int:round_id>/advance", api.round_advance, name="api-round-advance"),
    path("rounds/<int:round_id>/decide", api.round_decide, name="api-round-decide"),
]
