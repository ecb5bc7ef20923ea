"""API of ratings: staff queue answers and snapshot; annotators lease, rate (thumbs up / down), skip."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.core.api import strict_body
from feedback_site.core.errors import NotFound
from feedback_site.projects.permissions import ALL_ROLES, STAFF_ROLES, project_for, require_role
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


@extend_schema(responses=OpenApiTypes.OBJECT, request=None, summary="Lease the next answer to rate (204 when none is left)")
@api_view(["POST"])
def next_task(request, project_id: int):
    project = project_for(request.user, project_id, ALL_ROLES)
    assignment = services.next_task(project=project, annotator=request.user)
    if assignment is None:
        return Response(status=status.HTTP_204_NO_CONTENT)
    return Response(services.payload(assignment))


@extend_schema(responses=OpenApiTypes.OBJECT, summary="The caller's rating progress in a project (rated, skipped, still needed)")
@api_view(["GET"])
def progress(request, project_id: int):
    project = project_for(request.user, project_id, ALL_ROLES)
    return Response(rating_progress(project=project, annotator=request.user))


@extend_schema(responses=OpenApiTypes.OBJECT, request=SubmitIn, summary="Rate the answer: label true (thumbs up) or false (idempotent)")
@api_view(["POST"])
def submit(request, assignment_id: int):
    body = strict_body(request, SubmitIn)
    rating, created = services.submit(assignment_id=assignment_id, annotator=request.user, **body)
    return Response(
        {"rating_id": rating.pk, "assignment_id": assignment_id, "label": rating.label, "reason": rating.reason},
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


@extend_schema(responses=OpenApiTypes.OBJECT, request=None, summary="Skip an answer")
@api_view(["POST"])
def skip(request, assignment_id: int):
    assignment = services.skip(assignment_id=assignment_id, annotator=request.user)
    return Response({"assignment_id": assignment.pk, "status": assignment.status})


@extend_schema(responses=OpenApiTypes.OBJECT, request=None, summary="Keep the lease on an answer while its page is open")
@api_view(["POST"])
def renew(request, assignment_id: int):
    assignment = services.renew(assignment_id=assignment_id, annotator=request.user)
    return Response({"assignment_id": assignment.pk, "expires_at": assignment.expires_at})


@extend_schema(responses=OpenApiTypes.OBJECT, methods=["GET"], summary="Rating snapshots (staff)")
@extend_schema(
    responses=OpenApiTypes.OBJECT, methods=["POST"], request=None, summary="Freeze the ratings into a KTO snapshot (TRL unpaired JSONL)"
)
@api_view(["GET", "POST"])
def snapshots(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    if request.method == "POST":
        snapshot, created = services.snapshot_create(project=project, actor=request.user)
        return Response(snapshot_out(snapshot), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
    return Response([snapshot_out(s) for s in RatingSnapshot.objects.filter(project=project)[:200]])


@extend_schema(
    responses={(200, "application/x-ndjson"): OpenApiTypes.BINARY},
    summary='Download a rating snapshot (JSONL, one {"prompt", "completion", "label"} per line)',
)
@api_view(["GET"])
def snapshot_download(request, snapshot_id: int):
    snapshot = RatingSnapshot.objects.filter(pk=snapshot_id).first()
    if snapshot is None:
        raise NotFound("No such snapshot.")
    require_role(request.user, snapshot.project_id, STAFF_ROLES)
    path = services.snapshot_file(snapshot)
    return FileResponse(
        path.open("rb"), as_attachment=True, filename=f"ratings-{snapshot.number}.jsonl", content_type="application/x-ndjson"
    )
