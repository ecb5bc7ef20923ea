"""API of ratings: staff queue answers and snapshot; annotators lease, rate (thumbs up / down), skip."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.annotation.kind_api import lease_endpoints, snapshot_endpoints
from feedback_site.core.api import strict_body
from feedback_site.projects.permissions import STAFF_ROLES, project_for
from feedback_site.ratings import services
from feedback_site.ratings.models import RatingSnapshot
from feedback_site.ratings.selectors import rating_progress


class TasksIn(serializers.Serializer):
    response_ids = serializers.ListField(child=serializers.IntegerField(), required=False, allow_null=True, default=None)
    generation_run_id = serializers.IntegerField(required=False, allow_null=True, default=None)
    overlap = serializers.IntegerField(required=False, allow_null=True, default=None)


class SubmitIn(serializers.Serializer):
    # Checked by the service (a 400 naming the field), not coerced: "yes" or 1 is not a label.
    label = serializers.JSONField(required=False, default=None)
    reason = serializers.CharField(trim_whitespace=False, allow_blank=True, required=False, default="")
    time_spent_ms = serializers.IntegerField(required=False, allow_null=True, default=None)


def snapshot_out(snapshot: RatingSnapshot) -> dict:
    return {
        "id": snapshot.pk,
        "number": snapshot.number,
        "content_hash": snapshot.content_hash,
        "example_count": snapshot.example_count,
        "desirable_count": snapshot.desirable_count,
        "undesirable_count": snapshot.undesirable_count,
        "split_count": snapshot.split_count,
        "created_at": snapshot.created_at,
    }


@extend_schema(responses=OpenApiTypes.OBJECT, request=TasksIn, summary="Queue answers for thumbs up / down ratings")
@api_view(["POST"])
def tasks_create(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    created = services.tasks_create(project=project, actor=request.user, **strict_body(request, TasksIn))
    return Response({"created": created}, status=status.HTTP_201_CREATED)


@extend_schema(responses=OpenApiTypes.OBJECT, request=SubmitIn, summary="Rate the answer: label true (thumbs up) or false (idempotent)")
@api_view(["POST"])
def submit(request, assignment_id: int):
    body = strict_body(request, SubmitIn)
    rating, created = services.submit(assignment_id=assignment_id, annotator=request.user, **body)
    return Response(
        {"rating_id": rating.pk, "assignment_id": assignment_id, "label": rating.label, "reason": rating.reason},
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


_lease = lease_endpoints(
    noun="answer to rate",
    next_task=services.next_task,
    payload=services.payload,
    progress=rating_progress,
    skip=services.skip,
    renew=services.renew,
)
next_task, progress, skip, renew = _lease.next, _lease.progress, _lease.skip, _lease.renew

_snapshots = snapshot_endpoints(
    model=RatingSnapshot,
    out=snapshot_out,
    create=services.snapshot_create,
    file=services.snapshot_file,
    file_prefix="ratings",
    list_summary="Rating snapshots (staff)",
    create_summary="Freeze the ratings into a KTO snapshot (TRL unpaired JSONL)",
    download_summary='Download a rating snapshot (JSONL, one {"prompt", "completion", "label"} per line)',
)
snapshots, snapshot_download = _snapshots.snapshots, _snapshots.download
