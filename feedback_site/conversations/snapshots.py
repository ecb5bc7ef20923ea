"""Conversation snapshots: every judged branch point as TRL conversational preference pairs with
the whole history, frozen into a content-hashed JSONL (`core.frozen`).
"""

from __future__ import annotations

from pathlib import Path

from feedback_site.conversations.models import BranchPoint, ConversationNode, ConversationSnapshot
from feedback_site.core.errors import Invalid
from feedback_site.core.frozen import freeze_rows, verified_path
from feedback_site.core.hashing import pseudonym
from feedback_site.projects.models import Project
from feedback_site.projects.permissions import STAFF_ROLES, require_role
from rlhf.rankings import expand


def export_rows(project: Project) -> tuple[list[dict], int]:
    """(rows, branch points): one row per preference pair a judged branch point decides
    (`rlhf.rankings.expand` of its ranking), in TRL's conversational preference format:
    `prompt` is the full history the replies answered (system prompt, every earlier user turn
    and the reply the conversation continued with), `chosen` / `rejected` one assistant message
    each. An annotator's edit of the chosen reply adds one more row: the edit preferred over the
    reply it was made from (`"edit": true`, weight 1), the signal an edit gives. Rows are in a
    stable order (branch point id, then pair, then the edit)."""
    branch_points = list(
        BranchPoint.objects.filter(task__project=project, judged_at__isnull=False).select_related("task").order_by("task_id", "id")
    )
    tasks = {b.task_id: b.task for b in branch_points}
    nodes_by_task: dict[int, dict[int, ConversationNode]] = {}
    for node in ConversationNode.objects.filter(task_id__in=list(tasks)).only("pk", "task_id", "parent_id", "role", "content"):
        nodes_by_task.setdefault(node.task_id, {})[node.pk] = node
    rows = []
    for branch_point in branch_points:
        task = tasks[branch_point.task_id]
        nodes = nodes_by_task[task.pk]
        path = []
        node = nodes.get(branch_point.parent_id)
        while node is not None:
            path.append({"role": node.role, "content": node.content})
            node = nodes.get(node.parent_id)
        prompt = ([{"role": "system", "content": task.system_prompt}] if task.system_prompt else []) + path[::-1]
        decided = [(pair.chosen, pair.rejected, pair.weight, False) for pair in expand([(branch_point.order, False)])]
        if branch_point.continued_with_id is not None and branch_point.continued_with_id != branch_point.chosen_id:
            decided.append((branch_point.continued_with_id, branch_point.chosen_id, 1.0, True))
        for chosen, rejected, weight, edited in decided:
            rows.append(
                {
                    "prompt": prompt,
                    "chosen": [{"role": "assistant", "content": nodes[chosen].content}],
                    "rejected": [{"role": "assistant", "content": nodes[rejected].content}],
                    "task_id": task.pk,
                    "branch_point_id": branch_point.pk,
                    "turn_index": branch_point.turn_index,
                    "parent_node_id": branch_point.parent_id,
                    "chosen_node_id": chosen,
                    "rejected_node_id": rejected,
                    "weight": weight,
                    "edit": edited,
                    "annotator": pseudonym(project.pk, branch_point.annotator_id) if branch_point.annotator_id else None,
                    "source": task.source,
                    "model_version_id": task.policy_id,
                }
            )
    return rows, len(branch_points)


def snapshot_create(*, project: Project, actor) -> tuple[ConversationSnapshot, bool]:
    """Freeze every judged branch point's pairs into a JSONL file; the same content returns the
    latest snapshot instead of a new one. Returns (snapshot, created)."""
    require_role(actor, project, STAFF_ROLES)
    rows, branch_points = export_rows(project)
    if not rows:
        raise Invalid("there are no judged conversation turns to snapshot yet", code="no_conversations")
    return freeze_rows(
        model=ConversationSnapshot,
        project=project,
        folder="conversations",
        rows=rows,
        actor=actor,
        example_count=len(rows),
        branch_point_count=branch_points,
    )


def snapshot_file(snapshot: ConversationSnapshot) -> Path:
    """The snapshot's JSONL after checking it still has its recorded hash."""
    return verified_path(snapshot.path, snapshot.content_hash, f"conversation snapshot {snapshot.number}")
