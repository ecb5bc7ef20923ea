"""REST API v1 routes of the evaluation app (mounted under /api/v1/)."""

urlpatterns: list = []
