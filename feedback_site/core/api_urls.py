"""REST API v1 routes of the core app (mounted under /api/v1/)."""

from django.urls import path

from feedback_site.core import api

urlpatterns = [
    path("users/", api.user_list, name="api-users"),
    path("users/<int:user_id>/token", api.user_token_issue, name="api-user-token-issue"),
    path("users/<int:user_id>/deactivate", api.user_deactivate, name="api-user-deactivate"),
    path("users/<int:user_id>/tokens/revoke", api.user_tokens_revoke, name="api-user-tokens-revoke"),
]
