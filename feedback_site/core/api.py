"""API plumbing shared by every app: error mapping, strict request bodies, the bare health check, token revocation."""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from feedback_site.core import accounts
from feedback_site.core.errors import Forbidden, Invalid, NotFound, ServiceError, storage_error_message

log = logging.getLogger(__name__)


def strict_body(request, serializer_class: type[serializers.Serializer]) -> dict:
    """The request's JSON object validated by `serializer_class`, refusing fields it does not
    know (a typo such as "lable" is a 400 naming it, not a silently ignored value)."""
    if not isinstance(request.data, dict):
        raise Invalid("expected a JSON object", code="bad_body")
    unknown = set(request.data) - set(serializer_class().fields)
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(sorted(unknown))}", code="bad_field")
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


def exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        return Response({"error": exc.code, "detail": exc.message}, status=exc.status_code)
    message = storage_error_message(exc)
    if message is not None:
        log.error("storage failure: %s", exc)
        return Response({"error": "storage_unavailable", "detail": message}, status=503)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "error" not in response.data:
        detail = response.data.get("detail", response.data)
        response.data = {"error": getattr(exc, "default_code", "error"), "detail": detail}
    return response


@require_GET
def health(request):
    """The cheapest request the stack can answer: one `SELECT 1`. The load benchmark uses it as
    the ceiling that annotator requests are compared with."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return JsonResponse({"status": "ok"})


@extend_schema(
    request=None,
    responses={200: inline_serializer("TokensRevoked", {"user_id": serializers.IntegerField(), "revoked": serializers.IntegerField()})},
    summary="Revoke every API token of a user (site admins)",
)
@api_view(["POST"])
def user_tokens_revoke(request, user_id: int):
    if not accounts.is_site_admin(request.user):
        raise Forbidden("Only site admins can revoke API tokens.")
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        raise NotFound("No such user.")
    return Response({"user_id": user.pk, "revoked": accounts.tokens_revoke(actor=request.user, user=user)})
