"""API of demonstrations: staff queue tasks and snapshot; annotators lease, submit and skip."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.annotation.kind_api import snapshot_endpoints
from feedback_site.core.api import strict_body
from feedback_site.demonstrations import services
from feedback_site.demonstrations.models import DemonstrationSnapshot
from feedback_site.projects.permissions import ALL_ROLES, STAFF_ROLES, project_for


class TasksIn(serializers.Serializer):
    mode = serializers.CharField()
    prompt_ids = serializers.ListField(child=serializers.IntegerField(), required=False, allow_null=True, default=None)
    overlap = serializers.IntegerField(required=False, allow_null=True, default=None)


class SubmitIn(serializers.Serializer):
    text = serializers.CharField(trim_whitespace=False, allow_blank=True)
    time_spent_ms = serializers.IntegerField(required=False, allow_null=True, default=None)


def _snapshot_out(snapshot) -> dict:
    return {
        "id": snapshot.pk,
        "number": snapshot.number,
        "content_hash": snapshot.content_hash,
        "demonstration_count": snapshot.demonstration_count,
        "created_at": snapshot.created_at,
    }


@extend_schema(
    responses=OpenApiTypes.OBJECT, request=TasksIn, summary="Queue demonstration tasks (write an ideal response, or correct a shown one)"
)
@api_view(["POST"])
def tasks_create(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    created = services.tasks_create(project=project, actor=request.user, **strict_body(request, TasksIn))
    return Response({"created": created}, status=status.HTTP_201_CREATED)


@extend_schema(responses=OpenApiTypes.OBJECT, request=None, summary="Lease the next demonstration task (204 when none is left)")
@api_view(["POST"])
def next_task(request, project_id: int):
    project = project_for(request.user, project_id, ALL_ROLES)
    assignment = services.next_task(project=project, annotator=request.user)
    if assignment is None:
        return Response(status=status.HTTP_204_NO_CONTENT)
    return Response(services.payload(assignment))


@extend_schema(responses=OpenApiTypes.OBJECT, request=SubmitIn, summary="Submit a demonstration (idempotent)")
@api_view(["POST"])
def submit(request, assignment_id: int):
    demo, created = services.submit(assignment_id=assignment_id, annotator=request.user, **strict_body(request, SubmitIn))
    return Response(
        {"demonstration_id": demo.pk, "assignment_id": assignment_id, "text": demo.text},
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


@extend_schema(responses=OpenApiTypes.OBJECT, request=None, summary="Skip a demonstration task")
@api_view(["POST"])
def skip(request, assignment_id: int):
    assignment = services.skip(assignment_id=assignment_id, annotator=request.user)
    return Response({"assignment_id": assignment.pk, "status": assignment.status})


_snapshots = snapshot_endpoints(
    model=DemonstrationSnapshot,
    out=_snapshot_out,
    create=services.snapshot_create,
    file=services.snapshot_file,
    file_prefix="demonstrations",
    list_summary="Demonstration snapshots (staff)",
    create_summary="Freeze the demonstrations into a snapshot (TRL SFT JSONL)",
    download_summary='Download a demonstration snapshot (JSONL, one {"messages": [...]} per line)',
)
snapshots, snapshot_download = _snapshots.snapshots, _snapshots.download
