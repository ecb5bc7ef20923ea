"""The worker side of conversations: what the next-turn generation task (`workers.conversation_tasks`)
calls to claim a branch point, store its candidate replies and record a failure. The task never
writes rows itself, so the rules (claim once, store once, in one transaction) live here.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from feedback_site.annotation.models import AssignmentStatus
from feedback_site.conversations.models import BranchPoint, ConversationNode, ConversationTask, GenerationStatus, NodeSource
from feedback_site.conversations.services import node_create, path_to


def generation_start(*, branch_point_id: int) -> dict | None:
    """Mark a branch point as generating and return what to generate: {messages, k, sampling,
    model_version_id}; None when there is nothing to do (gone, already ready, lease given up).
    A branch point found `generating` is a redelivery after a worker died: it starts again."""
    with transaction.atomic():
        branch_point = (
            BranchPoint.objects.select_for_update(of=("self",)).select_related("task", "assignment").filter(pk=branch_point_id).first()
        )
        if branch_point is None or branch_point.status == GenerationStatus.READY or branch_point.judged_at is not None:
            return None
        if branch_point.assignment is not None and branch_point.assignment.status != AssignmentStatus.LEASED:
            return None
        task = branch_point.task
        if task.policy_id is None:
            branch_point.status, branch_point.error = GenerationStatus.FAILED, "this conversation has no policy version to sample from"
            branch_point.save(update_fields=["status", "error"])
            return None
        branch_point.status, branch_point.error = GenerationStatus.GENERATING, ""
        branch_point.attempts += 1
        branch_point.save(update_fields=["status", "error", "attempts"])
    return {
        "messages": conversation_messages(task, branch_point.parent_id),
        "k": task.candidates,
        "sampling": dict(task.sampling),
        "model_version_id": task.policy_id,
        "project_id": task.project_id,
    }


def conversation_messages(task: ConversationTask, leaf_id: int) -> list[dict[str, str]]:
    """The messages a policy answers at a node: system prompt, then the path down to it."""
    messages = [{"role": "system", "content": task.system_prompt}] if task.system_prompt else []
    return messages + [{"role": n.role, "content": n.content} for n in path_to(task, leaf_id)]


def candidates_store(*, branch_point_id: int, texts: list[str]) -> bool:
    """Store the K replies of a branch point and mark it ready, in one transaction, exactly once:
    returns False (storing nothing) when it is already ready (a duplicate delivery)."""
    with transaction.atomic():
        branch_point = BranchPoint.objects.select_for_update(of=("self",)).select_related("task").filter(pk=branch_point_id).first()
        if branch_point is None or branch_point.status == GenerationStatus.READY:
            return False
        task = branch_point.task
        if len(texts) != task.candidates:
            raise ValueError(f"expected {task.candidates} replies, got {len(texts)}")
        parent = ConversationNode(pk=branch_point.parent_id)
        for index, text in enumerate(texts):
            node_create(
                task,
                parent,
                "assistant",
                text.replace("\x00", "\ufffd"),
                NodeSource.CANDIDATE,
                sample_index=index,
                model_version_id=task.policy_id,
                branch_point=branch_point,
            )
        branch_point.status, branch_point.error, branch_point.ready_at = GenerationStatus.READY, "", timezone.now()
        branch_point.save(update_fields=["status", "error", "ready_at"])
        return True


def generation_fail(*, branch_point_id: int, error: str) -> None:
    BranchPoint.objects.filter(pk=branch_point_id).exclude(status=GenerationStatus.READY).update(
        status=GenerationStatus.FAILED, error=error[:2000]
    )
