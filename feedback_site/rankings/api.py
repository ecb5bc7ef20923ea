"""API of rankings: staff queue answer sets; annotators lease, rank, skip. Ranking files are imported
through the project imports API (kind "rankings")."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.annotation.kind_api import lease_endpoints
from feedback_site.core.api import strict_body
from feedback_site.projects.permissions import STAFF_ROLES, project_for
from feedback_site.rankings import services
from feedback_site.rankings.selectors import ranking_progress


class TasksIn(serializers.Serializer):
    # Checked by the service (a 400 naming the field), not coerced.
    answer_sets = serializers.JSONField(required=False, default=None)
    generation_run_id = serializers.JSONField(required=False, default=None)
    overlap = serializers.JSONField(required=False, default=None)


class SubmitIn(serializers.Serializer):
    ranks = serializers.JSONField(required=False, default=None)
    all_unacceptable = serializers.JSONField(required=False, default=False)
    strength = serializers.JSONField(required=False, default="")
    rationale = serializers.JSONField(required=False, default="")
    time_spent_ms = serializers.JSONField(required=False, default=None)


@extend_schema(responses=OpenApiTypes.OBJECT, request=TasksIn, summary="Queue answer sets (3–9 answers of one prompt) for ranking")
@api_view(["POST"])
def tasks_create(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    created = services.tasks_create(project=project, actor=request.user, **strict_body(request, TasksIn))
    return Response({"created": created}, status=status.HTTP_201_CREATED)


@extend_schema(
    responses=OpenApiTypes.OBJECT,
    request=SubmitIn,
    summary='Submit a ranking: ranks [{"response_id", "rank"}] (1 = best, equal ranks tie) or all_unacceptable (idempotent)',
)
@api_view(["POST"])
def submit(request, assignment_id: int):
    body = strict_body(request, SubmitIn)
    ranking, created = services.submit(assignment_id=assignment_id, annotator=request.user, **body)
    return Response(
        {
            "ranking_id": ranking.pk,
            "assignment_id": assignment_id,
            "order": ranking.tiers,
            "all_unacceptable": ranking.all_unacceptable,
            "strength": ranking.strength,
            "rationale": ranking.rationale,
        },
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


_lease = lease_endpoints(
    noun="answer set",
    next_task=services.next_task,
    payload=services.payload,
    progress=ranking_progress,
    skip=services.skip,
    renew=services.renew,
    next_summary="Lease the next answer set to rank (204 when none is left)",
)
next_task, progress, skip, renew = _lease.next, _lease.progress, _lease.skip, _lease.renew
