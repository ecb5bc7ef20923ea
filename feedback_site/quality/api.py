"""REST API of the quality app: dashboard figures, my statistics, disagreements and
adjudication, and queueing reward-model scoring for the uncertainty-first queue."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.annotation.models import Pair, Preference
from feedback_site.core.errors import Invalid, NotFound
from feedback_site.projects.permissions import ALL_ROLES, STAFF_ROLES, project_for, require_role
from feedback_site.quality import selectors, services


def bias_alpha_param(request) -> float:
    raw = request.query_params.get("alpha", "0.05") if hasattr(request, "query_params") else request.GET.get("alpha", "0.05")
    try:
        value = float(raw)
    except ValueError:
        raise Invalid("alpha must be a number between 0 and 1", code="bad_alpha") from None
    if not 0 < value < 1:
        raise Invalid("alpha must be a number between 0 and 1", code="bad_alpha")
    return value


def bucket_param(request) -> str:
    bucket = request.query_params.get("bucket", "week") if hasattr(request, "query_params") else request.GET.get("bucket", "week")
    if bucket not in ("week", "day"):
        raise Invalid("bucket must be week or day", code="bad_bucket")
    return bucket


@extend_schema(
    parameters=[
        OpenApiParameter("alpha", float, description="Significance level of the position-bias test (default 0.05)"),
        OpenApiParameter("bucket", str, enum=["week", "day"], description="Agreement over time per week or day"),
    ],
    responses=OpenApiTypes.OBJECT,
    summary="Quality dashboard of a project (staff): progress, annotators, agreement, labels",
)
@api_view(["GET"])
def quality_dashboard(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    return Response(selectors.dashboard(project, bias_alpha=bias_alpha_param(request), bucket=bucket_param(request)))


@extend_schema(responses=OpenApiTypes.OBJECT, summary="My own annotation statistics in a project")
@api_view(["GET"])
def quality_me(request, project_id: int):
    project = project_for(request.user, project_id, ALL_ROLES)
    return Response(selectors.my_statistics(project, request.user, bias_alpha=bias_alpha_param(request)))


@extend_schema(
    parameters=[
        OpenApiParameter("status", str, enum=["open", "adjudicated", "all"]),
        OpenApiParameter("limit", int),
        OpenApiParameter("offset", int),
    ],
    responses=OpenApiTypes.OBJECT,
    summary="Pairs whose human judgments disagree, with rationales (annotators pseudonymous)",
)
@api_view(["GET"])
def quality_disagreements(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    state = request.query_params.get("status", "open")
    if state not in ("open", "adjudicated", "all"):
        raise Invalid("status must be open, adjudicated or all", code="bad_status")
    try:
        limit = int(request.query_params.get("limit", 50))
        offset = int(request.query_params.get("offset", 0))
    except ValueError:
        raise Invalid("limit and offset must be integers", code="bad_page") from None
    if not 1 <= limit <= 200 or offset < 0:
        raise Invalid("limit must be 1..200 and offset at least 0", code="bad_page")
    total, items = selectors.disagreements(project, status=state, limit=limit, offset=offset)
    return Response({"count": total, "limit": limit, "offset": offset, "results": items})


class AdjudicationIn(serializers.Serializer):
    label = serializers.ChoiceField(choices=Preference.values)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=services.MAX_NOTE)


def _adjudication_out(adjudication) -> dict:
    return {
        "pair_id": adjudication.pair_id,
        "label": adjudication.label,
        "note": adjudication.note,
        "decided_by": adjudication.decided_by.username if adjudication.decided_by else None,
        "decided_at": adjudication.decided_at,
    }


@extend_schema(methods=["GET"], responses=OpenApiTypes.OBJECT, summary="A pair's adjudicated label (404 when none)")
@extend_schema(
    methods=["PUT"],
    request=AdjudicationIn,
    responses={200: OpenApiTypes.OBJECT, 201: OpenApiTypes.OBJECT},
    summary="Set (or change) a pair's final label; every change is audited",
)
@api_view(["GET", "PUT"])
def pair_adjudication(request, pair_id: int):
    if request.method == "PUT":
        data = AdjudicationIn(data=request.data)
        data.is_valid(raise_exception=True)
        adjudication, created = services.adjudicate(pair_id=pair_id, actor=request.user, **data.validated_data)
        return Response(_adjudication_out(adjudication), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
    pair = Pair.objects.filter(pk=pair_id).only("id", "project_id").first()
    if pair is None:
        raise NotFound("No such pair.")
    require_role(request.user, pair.project_id, STAFF_ROLES)
    from feedback_site.quality.models import Adjudication

    adjudication = Adjudication.objects.select_related("decided_by").filter(pair_id=pair_id).first()
    if adjudication is None:
        raise NotFound("This pair has not been adjudicated.")
    return Response(_adjudication_out(adjudication))


class ScoreIn(serializers.Serializer):
    reward_model = serializers.IntegerField(min_value=1, max_value=2**31 - 1, help_text="Id of a reward-model version of this project.")


@extend_schema(
    request=ScoreIn,
    responses={202: OpenApiTypes.OBJECT},
    summary="Score incomplete pairs with a reward model so the closest are served first",
)
@api_view(["POST"])
def quality_score_pairs(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    data = ScoreIn(data=request.data)
    data.is_valid(raise_exception=True)
    task_id = services.uncertainty_request(project=project, actor=request.user, reward_model_id=data.validated_data["reward_model"])
    return Response({"queued": True, "task_id": task_id}, status=status.HTTP_202_ACCEPTED)
