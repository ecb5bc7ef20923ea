"""REST API v1 routes of the quality app (mounted under /api/v1/)."""

urlpatterns: list = []
