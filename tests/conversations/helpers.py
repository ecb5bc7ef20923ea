"""Conversation tasks made the way the site makes them (conversations.services throughout).

`fill_candidates` does the worker's part through the same services the worker calls
(`generation_start`, then `candidates_store` in one transaction), with known texts instead of a
model's, for tests about the queue, the tree and snapshots; tests/conversations/
test_generation_worker.py runs the real worker with a tiny model."""

from __future__ import annotations

from feedback_site.conversations import generation as conversation_generation
from feedback_site.conversations import services
from feedback_site.conversations.models import BranchPoint, ConversationNode, NodeSource

OPENING = {
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Plan a picnic."},
    ],
    "followups": ["Where should we go?", "What food?", "And drinks?"],
}


def make_tasks(project, actor, n: int = 1, *, overlap: int | None = None, turns: int = 3, candidates: int = 2, **options):
    conversations = [
        {**OPENING, "messages": [OPENING["messages"][0], {"role": "user", "content": f"Plan a picnic ({i})."}]} for i in range(n)
    ]
    return services.tasks_create(
        project=project, actor=actor, conversations=conversations, overlap=overlap, turns=turns, candidates=candidates, **options
    )


def current(assignment_id: int) -> BranchPoint:
    return BranchPoint.objects.filter(assignment_id=assignment_id).order_by("-turn_index").first()


def reply_text(branch_point: BranchPoint, index: int) -> str:
    return f"reply {index} at turn {branch_point.turn_index} of bp {branch_point.pk}"


def fill_candidates(branch_point: BranchPoint) -> list[int]:
    """Candidates of the branch point (generated with known texts when it has none yet); their ids."""
    branch_point.refresh_from_db()
    if branch_point.status != "ready":
        conversation_generation.generation_start(branch_point_id=branch_point.pk)
        k = branch_point.task.candidates
        conversation_generation.candidates_store(branch_point_id=branch_point.pk, texts=[reply_text(branch_point, i) for i in range(k)])
    return replies(branch_point)


def replies(branch_point: BranchPoint) -> list[int]:
    return list(
        ConversationNode.objects.filter(branch_point=branch_point, source=NodeSource.CANDIDATE)
        .order_by("sample_index")
        .values_list("pk", flat=True)
    )


def walk(assignment, annotator, *, pick: int = 0, now=None):
    """Judge every turn of the conversation, picking reply `pick` each time; returns the result."""
    result = None
    while (branch_point := current(assignment.pk)) is not None and branch_point.judged_at is None:
        ids = fill_candidates(branch_point)
        _, _, result = services.turn_submit(
            assignment_id=assignment.pk, annotator=annotator, branch_point_id=branch_point.pk, choice=ids[pick], now=now
        )
    return result
