"""Routes of the ops app: the ops page and the detailed health (API)."""

from django.urls import path

from feedback_site.ops import api, views

urlpatterns = [
    path("ops/", views.ops_dashboard, name="ops-dashboard"),
    path("api/v1/health/details", api.health_details, name="api-health-details"),
]
