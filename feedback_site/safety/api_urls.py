"""REST API v1 routes of the safety app (mounted under /api/v1/)."""

from django.urls import path

from feedback_site.safety import api

urlpatterns = [
    path("projects/<int:project_id>/safety/policy", api.safety_policy, name="api-safety-policy"),
    path("projects/<int:project_id>/safety/flagged", api.flagged_list, name="api-safety-flagged"),
    path("safety/screens/<int:screen_id>/release", api.screen_release, name="api-safety-release"),
    path("safety/screens/<int:screen_id>/reject", api.screen_reject, name="api-safety-reject"),
]
