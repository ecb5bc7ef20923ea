"""API of demonstrations: staff queue tasks and snapshot; annotators lease, submit and skip."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.core.api import strict_body
from feedback_site.core.errors import NotFound
from feedback_site.demonstrations import services
from feedback_site.demonstrations.models import DemonstrationSnapshot
from feedback_site.projects.permissions import ALL_ROLES, STAFF_ROLES, project_for, require_role


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


@extend_schema(responses=OpenApiTypes.OBJECT, methods=["GET"], summary="Demonstration snapshots (staff)")
@extend_schema(
    responses=OpenApiTypes.OBJECT, methods=["POST"], request=None, summary="Freeze the demonstrations into a snapshot (TRL SFT JSONL)"
)
@api_view(["GET", "POST"])
def snapshots(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    if request.method == "POST":
        snapshot, created = services.snapshot_create(project=project, actor=request.user)
        return Response(_snapshot_out(snapshot), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
    return Response([_snapshot_out(s) for s in DemonstrationSnapshot.objects.filter(project=project)[:200]])


@extend_schema(
    responses={(200, "application/x-ndjson"): OpenApiTypes.BINARY},
    summary='Download a demonstration snapshot (JSONL, one {"messages": [...]} per line)',
)
@api_view(["GET"])
def snapshot_download(request, snapshot_id: int):
    snapshot = DemonstrationSnapshot.objects.filter(pk=snapshot_id).first()
    if snapshot is None:
        raise NotFound("No such snapshot.")
    require_role(request.user, snapshot.project_id, STAFF_ROLES)
    path = services.snapshot_file(snapshot)
    return FileResponse(
        path.open("rb"), as_attachment=True, filename=f"demonstrations-{snapshot.number}.jsonl", content_type="application/x-ndjson"
    )
