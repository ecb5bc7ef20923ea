"""API plumbing shared by every app: error mapping, strict request bodies, the bare health check; and
the site admins' user API (create users, issue, rotate and revoke API tokens, deactivate)."""

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


class UserOut(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField()
    is_active = serializers.BooleanField()
    is_site_admin = serializers.SerializerMethodField()
    has_token = serializers.SerializerMethodField()
    date_joined = serializers.DateTimeField()
    last_login = serializers.DateTimeField(allow_null=True)

    def get_is_site_admin(self, user) -> bool:
        return bool(user.is_staff or user.is_superuser)

    def get_has_token(self, user) -> bool:
        return bool(getattr(user, "token_count", 0))


class UserIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    generate_password = serializers.BooleanField(
        required=False, default=False, help_text="Make a random password (returned once) for logging in to the pages."
    )
    issue_token = serializers.BooleanField(required=False, default=True, help_text="Issue an API token (returned once).")


class UserCreatedOut(UserOut):
    password = serializers.CharField(allow_null=True, help_text="The generated password: shown this once, or null.")
    token = serializers.CharField(allow_null=True, help_text="The API token key: shown this once, or null.")


def _site_admin(request, what: str) -> None:
    if not accounts.is_site_admin(request.user):
        raise Forbidden(f"Only site admins can {what}.")


def _user(user_id: int):
    from django.db.models import Count

    user = get_user_model().objects.annotate(token_count=Count("auth_token")).filter(pk=user_id).first()
    if user is None:
        raise NotFound("No such user.")
    return user


@extend_schema(methods=["GET"], responses=UserOut(many=True), summary="Users of the site, by id (site admins)")
@extend_schema(
    methods=["POST"],
    request=UserIn,
    responses={201: UserCreatedOut},
    summary="Create a user, optionally with a password and an API token shown once (site admins)",
)
@api_view(["GET", "POST"])
def user_list(request):
    from django.db.models import Count
    from rest_framework.pagination import LimitOffsetPagination

    _site_admin(request, "manage users")
    if request.method == "POST":
        created = accounts.user_create(actor=request.user, **strict_body(request, UserIn))
        user = _user(created.user.pk)
        return Response({**UserOut(user).data, "password": created.password, "token": created.token}, status=201)
    users = get_user_model().objects.annotate(token_count=Count("auth_token")).order_by("id")
    if request.query_params.get("username"):
        users = users.filter(username__icontains=request.query_params["username"])
    paginator = LimitOffsetPagination()
    page = paginator.paginate_queryset(users, request)
    return paginator.get_paginated_response(UserOut(page, many=True).data)


@extend_schema(
    request=None,
    responses={201: inline_serializer("TokenIssued", {"user_id": serializers.IntegerField(), "token": serializers.CharField()})},
    summary="Issue a new API token for a user, replacing any they had; the key is shown once (site admins)",
)
@api_view(["POST"])
def user_token_issue(request, user_id: int):
    _site_admin(request, "issue API tokens")
    user = _user(user_id)
    return Response({"user_id": user.pk, "token": accounts.token_issue(actor=request.user, user=user)}, status=201)


@extend_schema(request=None, responses=UserOut, summary="Deactivate a user: access ends, their judgments stay (site admins)")
@api_view(["POST"])
def user_deactivate(request, user_id: int):
    _site_admin(request, "deactivate users")
    accounts.user_deactivate(actor=request.user, user=_user(user_id))
    return Response(UserOut(_user(user_id)).data)
