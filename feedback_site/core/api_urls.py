"""REST API v1 routes of the core app (mounted under /api/v1/)."""

from django.urls import path

from feedback_site.core import api

urlpatterns = [
    path("users/<int:user_id>/tokens/revoke", api.user_tokens_revoke, name="api-user-tokens-revoke"),
]
