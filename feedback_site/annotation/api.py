"""Annotator API: next pair, judgment, skip, lease renewal, own progress; and for staff, gold
pairs, pauses, imports, prompts, the judgments list and a project's annotation progress.

The two hot calls (next, judgment) skip DRF's serializers and renderer: the payload comes ready
from the service (one SQL statement on PostgreSQL) and is written with `json.dumps`; the request
body is checked by hand with the same rules and error shape as `JudgmentIn`, which still
documents the body in the OpenAPI schema. Authentication, CSRF handling for session users and
the error format stay DRF's (`@api_view`).
"""

from __future__ import annotations

import json
from datetime import UTC

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from feedback_site.annotation import imports, selectors, services
from feedback_site.annotation.models import DisplayChoice, Prompt, Strength
from feedback_site.core.errors import Invalid, NotFound, ServiceError
from feedback_site.projects.models import ImportBatch, ImportKind
from feedback_site.projects.permissions import ALL_ROLES, STAFF_ROLES, project_for


class JudgmentIn(serializers.Serializer):
    choice = serializers.ChoiceField(choices=DisplayChoice.values)
    strength = serializers.ChoiceField(choices=Strength.values, required=False, allow_blank=True, default="")
    criteria = serializers.DictField(child=serializers.ChoiceField(choices=["left", "right", "tie"]), required=False, default=dict)
    rationale = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000, trim_whitespace=False)
    time_spent_ms = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0, max_value=86_400_000)


class JudgmentOut(serializers.Serializer):
    judgment_id = serializers.IntegerField(source="pk")
    assignment_id = serializers.IntegerField()
    choice = serializers.CharField()
    strength = serializers.CharField()
    criteria = serializers.DictField()
    rationale = serializers.CharField()
    time_spent_ms = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


_side = inline_serializer(
    "Side",
    {
        "text": serializers.CharField(),
        "html": serializers.CharField(),
        # Set when the safety screen says "blur with a warning": {"action": "warn", "reason": ...}.
        "safety_flag": serializers.DictField(allow_null=True),
    },
)
AssignmentOut = inline_serializer(
    "Assignment",
    {
        "assignment_id": serializers.IntegerField(),
        "pair_id": serializers.IntegerField(),
        "import_id": serializers.JSONField(
            allow_null=True, help_text="The `id` the prompt was imported with (string or integer), or null."
        ),
        "shown_left": serializers.ChoiceField(choices=["a", "b"], help_text="Which stored response (A or B of the pair) is shown left."),
        "left_response_id": serializers.IntegerField(),
        "right_response_id": serializers.IntegerField(),
        "prompt": inline_serializer(
            "AssignmentPrompt",
            {
                "text": serializers.CharField(),
                "html": serializers.CharField(),
                "system_prompt": serializers.CharField(),
                "history": serializers.ListField(child=serializers.DictField()),
            },
        ),
        "left": _side,
        "right": _side,
        "criteria": serializers.ListField(child=serializers.CharField()),
        "expires_at": serializers.DateTimeField(),
        "lease_seconds": serializers.IntegerField(),
    },
)


def _json(data, status_code: int = 200) -> HttpResponse:
    # Same bytes DRF's JSONRenderer writes (compact, UTF-8), without its content negotiation.
    return HttpResponse(json.dumps(data, ensure_ascii=False, separators=(",", ":")), status=status_code, content_type="application/json")


def _drf_datetime(value) -> str:
    # DRF's DateTimeField output (settings.TIME_ZONE is UTC): ISO 8601 with a Z.
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _judgment_out(judgment) -> dict:
    return {
        "judgment_id": judgment.pk,
        "assignment_id": judgment.assignment_id,
        "choice": judgment.choice,
        "strength": judgment.strength,
        "criteria": judgment.criteria,
        "rationale": judgment.rationale,
        "time_spent_ms": judgment.time_spent_ms,
        "created_at": _drf_datetime(judgment.created_at),
    }


_STRENGTHS = set(Strength.values) | {""}


def _judgment_in(data) -> dict:
    """The checks of `JudgmentIn` (which documents the body in the schema), by hand: the hot path
    skips DRF's serializer machinery. Errors have the serializer's shape: {field: [message]}."""
    if not hasattr(data, "get"):
        raise ValidationError({"non_field_errors": ["Invalid data. Expected a dictionary."]})
    errors: dict[str, list[str]] = {}
    choice = data.get("choice")
    if choice is None:
        errors["choice"] = ["This field is required."]
    elif not isinstance(choice, str) or choice not in DisplayChoice.values:
        errors["choice"] = [f'"{choice}" is not a valid choice.']
    strength = data.get("strength", "")
    if not isinstance(strength, str) or strength not in _STRENGTHS:
        errors["strength"] = [f'"{strength}" is not a valid choice.']
    criteria = data.get("criteria", {})
    if not isinstance(criteria, dict):
        errors["criteria"] = [f'Expected a dictionary of items but got type "{type(criteria).__name__}".']
    else:
        bad = {k: [f'"{v}" is not a valid choice.'] for k, v in criteria.items() if v not in ("left", "right", "tie")}
        if bad:
            errors["criteria"] = bad
    rationale = data.get("rationale", "")
    if not isinstance(rationale, str):
        errors["rationale"] = ["Not a valid string."]
    elif len(rationale) > 10_000:
        errors["rationale"] = ["Ensure this field has no more than 10000 characters."]
    time_spent_ms = data.get("time_spent_ms")
    if time_spent_ms is not None:
        if isinstance(time_spent_ms, str) and time_spent_ms.strip().lstrip("-").isdigit():
            time_spent_ms = int(time_spent_ms)
        if isinstance(time_spent_ms, float) and time_spent_ms.is_integer():
            time_spent_ms = int(time_spent_ms)
        if not isinstance(time_spent_ms, int) or isinstance(time_spent_ms, bool):
            errors["time_spent_ms"] = ["A valid integer is required."]
        elif not 0 <= time_spent_ms <= 86_400_000:
            errors["time_spent_ms"] = ["Ensure this value is between 0 and 86400000."]
    if errors:
        raise ValidationError(errors)
    return {"choice": choice, "strength": strength, "criteria": criteria, "rationale": rationale, "time_spent_ms": time_spent_ms}


@extend_schema(
    request=None,
    responses={
        200: AssignmentOut,
        204: OpenApiResponse(description="Nothing left for you in this project."),
        403: OpenApiResponse(description='You are paused in this project: `{"error": "paused", "detail": "<why>"}`.'),
    },
    summary="Lease the next pair (or get back the one you hold)",
)
@api_view(["POST"])
def _assignment_next_drf(request, project_id: int):
    # The service checks that the project exists and the caller is a member (404 otherwise) and
    # not paused (403 `paused`) in the same statement that looks for their open lease.
    leased = services.assignment_next(project=project_id, annotator=request.user)
    if leased is None:
        return HttpResponse(status=status.HTTP_204_NO_CONTENT)
    payload = leased.payload if leased.payload is not None else selectors.assignment_payload(leased.assignment)
    return _json(payload)


@extend_schema(request=JudgmentIn, responses={201: JudgmentOut, 200: JudgmentOut}, summary="Submit a judgment (idempotent)")
@api_view(["POST"])
def _judgment_submit_drf(request, assignment_id: int):
    judgment, created = services.judgment_submit(assignment_id=assignment_id, annotator=request.user, **_judgment_in(request.data))
    return _json(_judgment_out(judgment), status.HTTP_201_CREATED if created else status.HTTP_200_OK)


# --- The fast lane -----------------------------------------------------------------------------
# The common case of the two hot calls, an API client with `Authorization: Token <key>` and a JSON
# (or empty) body on PostgreSQL, is answered without DRF: the token is resolved inside the
# queue's first SQL statement (no separate authentication query) and errors are written in the
# same `{"error", "detail"}` format. Everything else (browser sessions with their CSRF check, a
# missing or malformed header, an unknown token, a form body, SQLite) goes to the DRF views
# above, which also document both routes in the OpenAPI schema (drf-spectacular reads `cls`).

_TOKEN_PREFIX = "token "


def _token_of(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header[:6].lower() != _TOKEN_PREFIX:
        return None
    key = header[6:].strip()
    if not key or " " in key or len(key) > 40:
        return None
    return key


def _json_body(request):
    content_type = request.META.get("CONTENT_TYPE", "")
    body = request.body
    if not body:
        return {}
    if not content_type.startswith("application/json"):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _error(exc) -> HttpResponse:
    return _json({"error": exc.code, "detail": exc.message}, exc.status_code)


def _fast_lane(drf_view):
    def decorate(fast):
        def view(request, **kwargs):
            token = _token_of(request) if request.method == "POST" and services._fast() else None
            if token is None:
                return drf_view(request, **kwargs)
            response = fast(request, token, **kwargs)
            return drf_view(request, **kwargs) if response is None else response

        view.csrf_exempt = True  # token-authenticated; session callers go through DRF's CSRF check
        view.cls = drf_view.cls  # the OpenAPI schema documents the DRF view
        view.initkwargs = drf_view.initkwargs
        view.__name__ = fast.__name__
        view.__doc__ = fast.__doc__
        return view

    return decorate


@_fast_lane(_assignment_next_drf)
def assignment_next(request, token: str, project_id: int):
    try:
        leased = services.assignment_next_for_token(project_id=project_id, token=token)
    except ServiceError as exc:
        return _error(exc)
    if leased is False:
        return None  # unknown token: DRF answers the 401
    if leased is None:
        return HttpResponse(status=status.HTTP_204_NO_CONTENT)
    return _json(leased.payload)


@_fast_lane(_judgment_submit_drf)
def judgment_submit(request, token: str, assignment_id: int):
    data = _json_body(request)
    if data is None:
        return None  # a body DRF parses differently (form) or refuses (bad JSON): let it answer
    try:
        fields = _judgment_in(data)
        result = services.judgment_submit_for_token(assignment_id=assignment_id, token=token, **fields)
    except ValidationError as exc:
        return _json({"error": "invalid", "detail": exc.detail}, status.HTTP_400_BAD_REQUEST)
    except ServiceError as exc:
        return _error(exc)
    if result is False:
        return None
    judgment, created = result
    return _json(_judgment_out(judgment), status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@extend_schema(
    request=None,
    responses={200: inline_serializer("SkipOut", {"assignment_id": serializers.IntegerField(), "status": serializers.CharField()})},
    summary="Skip the pair (you will not be offered it again)",
)
@api_view(["POST"])
def assignment_skip(request, assignment_id: int):
    assignment = services.assignment_skip(assignment_id=assignment_id, annotator=request.user)
    return Response({"assignment_id": assignment.pk, "status": assignment.status})


@extend_schema(
    request=None,
    responses={
        200: inline_serializer("RenewOut", {"assignment_id": serializers.IntegerField(), "expires_at": serializers.DateTimeField()})
    },
    summary="Renew the lease while the page is open",
)
@api_view(["POST"])
def assignment_renew(request, assignment_id: int):
    assignment = services.assignment_renew(assignment_id=assignment_id, annotator=request.user)
    return Response({"assignment_id": assignment.pk, "expires_at": assignment.expires_at})


@extend_schema(
    responses={
        200: inline_serializer(
            "Progress",
            {
                "judged": serializers.IntegerField(),
                "skipped": serializers.IntegerField(),
                "remaining_in_project": serializers.IntegerField(),
            },
        )
    },
    summary="Your own progress in a project",
)
@api_view(["GET"])
def my_progress(request, project_id: int):
    project = project_for(request.user, project_id, ALL_ROLES)
    return Response(selectors.annotator_progress(project=project, annotator=request.user))


# ---------------------------------------------------------------------------------------------
# Gold pairs and pauses (staff)
# ---------------------------------------------------------------------------------------------


class GoldIn(serializers.Serializer):
    gold = serializers.BooleanField()
    gold_label = serializers.ChoiceField(choices=["a", "b", "tie", "both_bad"], required=False, allow_blank=True, default="")


PairGoldOut = inline_serializer(
    "PairGold", {"pair_id": serializers.IntegerField(), "is_gold": serializers.BooleanField(), "gold_label": serializers.CharField()}
)
PauseOut = inline_serializer(
    "MemberPause",
    {
        "user_id": serializers.IntegerField(),
        "paused": serializers.BooleanField(),
        "paused_at": serializers.DateTimeField(allow_null=True),
        "pause_reason": serializers.CharField(),
    },
)


def _pause_out(membership) -> dict:
    return {
        "user_id": membership.user_id,
        "paused": membership.paused_at is not None,
        "paused_at": membership.paused_at,
        "pause_reason": membership.pause_reason,
    }


@extend_schema(request=GoldIn, responses={200: PairGoldOut}, summary="Mark a pair as gold with its known label, or unmark it (staff)")
@api_view(["POST"])
def pair_gold(request, pair_id: int):
    from feedback_site.annotation.models import Pair

    pair = Pair.objects.filter(pk=pair_id).first()
    if pair is None:
        raise NotFound("No such pair.")
    # Non-members get 404 (as for projects); members without a staff role get 403.
    project_for(request.user, pair.project_id, ALL_ROLES)
    data = GoldIn(data=request.data)
    data.is_valid(raise_exception=True)
    pair = services.pair_set_gold(pair=pair, actor=request.user, **data.validated_data)
    return Response({"pair_id": pair.pk, "is_gold": pair.is_gold, "gold_label": pair.gold_label})


class PauseIn(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


def _member_user(project_id: int, user_id: int):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        raise NotFound("That user is not a member of this project.")
    return user


@extend_schema(request=PauseIn, responses={200: PauseOut}, summary="Pause a member: no new pairs until unpaused (admins)")
@api_view(["POST"])
def member_pause(request, project_id: int, user_id: int):
    project = project_for(request.user, project_id, ALL_ROLES)
    data = PauseIn(data=request.data)
    data.is_valid(raise_exception=True)
    membership = services.membership_pause(
        project=project, user=_member_user(project_id, user_id), reason=data.validated_data["reason"], actor=request.user
    )
    return Response(_pause_out(membership))


@extend_schema(request=None, responses={200: PauseOut}, summary="Lift a member's pause (admins)")
@api_view(["POST"])
def member_unpause(request, project_id: int, user_id: int):
    project = project_for(request.user, project_id, ALL_ROLES)
    membership = services.membership_unpause(project=project, user=_member_user(project_id, user_id), actor=request.user)
    return Response(_pause_out(membership))


# ---------------------------------------------------------------------------------------------
# Imports, prompts and progress of a project (staff)
# ---------------------------------------------------------------------------------------------


@extend_schema(
    responses=inline_serializer(
        "ProjectProgress", {k: serializers.IntegerField() for k in ("pairs", "queued", "complete", "judgments", "needed")}
    ),
    summary="Pairs and judgments so far (staff)",
)
@api_view(["GET"])
def project_progress_view(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    return Response(selectors.project_progress(project))


class ImportOut(serializers.ModelSerializer):
    class Meta:
        model = ImportBatch
        fields = ["id", "kind", "filename", "sha256", "record_count", "queued_for_annotation", "created_at"]


class ImportIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ImportKind.values)
    # Checked in the view, so a missing or empty file is named like the parser's errors
    # ({"error": "no_file" | "empty_file", "detail": ...}) rather than as a field dict.
    file = serializers.FileField(required=False, allow_empty_file=True)
    queue_for_annotation = serializers.BooleanField(required=False, allow_null=True, default=None)


@extend_schema(methods=["GET"], responses=ImportOut(many=True), summary="Imports of this project")
@extend_schema(
    methods=["POST"],
    request={"multipart/form-data": ImportIn},
    responses={201: ImportOut},
    summary="Import prompts (JSONL/CSV), ready pairs (JSONL), HH-RLHF records or K-way rankings (JSONL): all or nothing",
)
@api_view(["GET", "POST"])
@parser_classes([MultiPartParser, FormParser])
def import_list(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    if request.method == "POST":
        data = ImportIn(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data.get("file")
        if upload is None:
            raise Invalid("no file was uploaded: send it as the multipart form field 'file'", code="no_file")
        if not upload.size:
            raise Invalid(f"{upload.name} is empty (0 bytes): nothing was imported", code="empty_file")
        result = imports.import_file(
            project=project,
            actor=request.user,
            kind=data.validated_data["kind"],
            filename=upload.name,
            data=upload.read(),
            queue_for_annotation=data.validated_data["queue_for_annotation"],
        )
        return Response({**ImportOut(result.batch).data, "made": result.made}, status=status.HTTP_201_CREATED)
    return Response(ImportOut(ImportBatch.objects.filter(project=project), many=True).data)


class PromptOut(serializers.ModelSerializer):
    class Meta:
        model = Prompt
        fields = ["id", "text", "system_prompt", "history", "metadata", "split", "created_at"]


@extend_schema(responses=PromptOut(many=True), summary="Prompts of this project (staff)")
@api_view(["GET"])
def prompt_list(request, project_id: int):
    from rest_framework.pagination import LimitOffsetPagination

    project = project_for(request.user, project_id, STAFF_ROLES)
    paginator = LimitOffsetPagination()
    page = paginator.paginate_queryset(Prompt.objects.filter(project=project).order_by("id"), request)
    return paginator.get_paginated_response(PromptOut(page, many=True).data)


JudgmentRowOut = inline_serializer(
    "JudgmentRow",
    {
        "judgment_id": serializers.IntegerField(),
        "pair_id": serializers.IntegerField(),
        "import_id": serializers.JSONField(allow_null=True, help_text="The `id` the prompt was imported with, or null."),
        "annotator": serializers.CharField(help_text="Pseudonymous id, the same as in snapshot exports (`ann-…`)."),
        "choice": serializers.CharField(help_text="What was clicked: left, right, tie or both_bad."),
        "preferred": serializers.CharField(help_text="The choice in stored terms: a, b, tie or both_bad."),
        "order_shown": serializers.ListField(child=serializers.CharField()),
        "strength": serializers.CharField(allow_null=True),
        "criteria": serializers.DictField(),
        "rationale": serializers.CharField(),
        "time_spent_ms": serializers.IntegerField(allow_null=True),
        "guideline_version": serializers.IntegerField(allow_null=True),
        "accepted_after_expiry": serializers.BooleanField(),
        "created_at": serializers.DateTimeField(),
    },
    many=True,
)


@extend_schema(
    parameters=[
        OpenApiParameter("annotator", str, description="A pseudonymous annotator id (`ann-…`, as exported) or a user id."),
        OpenApiParameter("since", OpenApiTypes.DATETIME, description="Only judgments made at or after this ISO 8601 time."),
        OpenApiParameter("limit", int, description="Page size (default 100)."),
        OpenApiParameter("offset", int, description="Rows to skip."),
    ],
    responses=JudgmentRowOut,
    summary="Judgments of this project, oldest first, with pseudonymous annotators (staff)",
)
@api_view(["GET"])
def judgment_list(request, project_id: int):
    from django.utils.dateparse import parse_datetime
    from django.utils.timezone import is_naive, make_aware
    from rest_framework.pagination import LimitOffsetPagination

    project = project_for(request.user, project_id, STAFF_ROLES)
    since = request.query_params.get("since")
    if since:
        try:
            parsed = parse_datetime(since)
        except ValueError:
            parsed = None
        if parsed is None:
            raise Invalid(f"since={since!r} is not an ISO 8601 time such as 2025-01-31T12:00:00Z", code="bad_since")
        since = make_aware(parsed, UTC) if is_naive(parsed) else parsed
    judgments = selectors.project_judgments(project=project, annotator=request.query_params.get("annotator") or None, since=since or None)
    paginator = LimitOffsetPagination()
    page = paginator.paginate_queryset(judgments, request)
    return paginator.get_paginated_response([selectors.judgment_row(project, j) for j in page])
