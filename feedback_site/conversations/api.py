"""API of conversations: staff queue and import conversations and snapshot; annotators lease one,
read its state (the page polls it while replies are generated), judge each turn, skip, renew."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.annotation.kind_api import lease_endpoints, snapshot_endpoints
from feedback_site.conversations import services
from feedback_site.conversations import snapshots as conversation_snapshots
from feedback_site.conversations.models import ConversationSnapshot
from feedback_site.conversations.selectors import conversation_progress
from feedback_site.core.api import strict_body
from feedback_site.projects.permissions import STAFF_ROLES, project_for


class TasksIn(serializers.Serializer):
    # Shapes are checked by the service (a 400 naming the field and the item), not coerced.
    conversations = serializers.JSONField(required=False, default=None)
    prompt_ids = serializers.JSONField(required=False, default=None)
    turns = serializers.JSONField(required=False, default=3)
    candidates = serializers.JSONField(required=False, default=2)
    overlap = serializers.JSONField(required=False, default=None)
    allow_user_turns = serializers.JSONField(required=False, default=False)
    allow_edits = serializers.JSONField(required=False, default=False)
    policy_version_id = serializers.JSONField(required=False, default=None)
    sampling = serializers.JSONField(required=False, default=None)
    priority = serializers.JSONField(required=False, default=0)


class TurnIn(serializers.Serializer):
    branch_point_id = serializers.JSONField(required=False, default=None)
    order = serializers.JSONField(required=False, default=None)
    choice = serializers.JSONField(required=False, default=None)
    edited_text = serializers.JSONField(required=False, default=None)
    next_user_turn = serializers.JSONField(required=False, default=None)
    time_spent_ms = serializers.JSONField(required=False, default=None)


class RetryIn(serializers.Serializer):
    branch_point_id = serializers.JSONField(required=False, default=None)


def snapshot_out(snapshot: ConversationSnapshot) -> dict:
    return {
        "id": snapshot.pk,
        "number": snapshot.number,
        "content_hash": snapshot.content_hash,
        "example_count": snapshot.example_count,
        "branch_point_count": snapshot.branch_point_count,
        "created_at": snapshot.created_at,
    }


@extend_schema(responses=OpenApiTypes.OBJECT, request=TasksIn, summary="Queue multi-turn conversations (staff)")
@api_view(["POST"])
def tasks_create(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    tasks = services.tasks_create(project=project, actor=request.user, **strict_body(request, TasksIn))
    return Response({"created": len(tasks), "task_ids": [t.pk for t in tasks]}, status=status.HTTP_201_CREATED)


@extend_schema(responses=OpenApiTypes.OBJECT, summary="Your conversation as it stands (polled while replies are generated)")
@api_view(["GET"])
def state(request, assignment_id: int):
    assignment = services.assignment_get(assignment_id=assignment_id, annotator=request.user)
    return Response(services.payload(assignment))


@extend_schema(responses=OpenApiTypes.OBJECT, request=TurnIn, summary="Judge the current turn: rank or pick a reply (idempotent)")
@api_view(["POST"])
def turn(request, assignment_id: int):
    body = strict_body(request, TurnIn)
    _, created, _ = services.turn_submit(assignment_id=assignment_id, annotator=request.user, **body)
    assignment = services.assignment_get(assignment_id=assignment_id, annotator=request.user)
    return Response(services.payload(assignment), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@extend_schema(responses=OpenApiTypes.OBJECT, request=RetryIn, summary="Generate the replies of a failed turn again")
@api_view(["POST"])
def retry(request, assignment_id: int):
    body = strict_body(request, RetryIn)
    services.generation_retry(assignment_id=assignment_id, annotator=request.user, branch_point_id=body["branch_point_id"])
    assignment = services.assignment_get(assignment_id=assignment_id, annotator=request.user)
    return Response(services.payload(assignment))


_lease = lease_endpoints(
    noun="conversation",
    next_task=services.next_task,
    payload=services.payload,
    progress=conversation_progress,
    skip=services.skip,
    renew=services.renew,
    next_summary="Lease the next conversation, or resume yours (204 when none is left)",
    skip_summary="Give a conversation back (the turns judged so far stay)",
)
next_task, progress, skip, renew = _lease.next, _lease.progress, _lease.skip, _lease.renew

_snapshots = snapshot_endpoints(
    model=ConversationSnapshot,
    out=snapshot_out,
    create=conversation_snapshots.snapshot_create,
    file=conversation_snapshots.snapshot_file,
    file_prefix="conversations",
    list_summary="Conversation snapshots (staff)",
    create_summary="Freeze every judged branch point into TRL conversational pairs",
    download_summary='Download a conversation snapshot (JSONL, one {"prompt", "chosen", "rejected"} per line)',
)
snapshots, snapshot_download = _snapshots.snapshots, _snapshots.download
