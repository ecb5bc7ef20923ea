"""Import existing conversation trees (Open-Assistant style), atomically.

Format: JSONL, one tree per line. A line is the tree's first message, nested:

    {"system": "optional system prompt", "metadata": {...optional},
     "role": "user", "content": "...",
     "replies": [{"role": "assistant", "content": "...", "rank": 0, "replies": [...]}, ...]}

Roles alternate down every branch, starting with the user. `rank` (0 = best; equal ranks tie)
orders sibling assistant replies: give it on every reply of a group of two or more, or on none.
Each ranked group becomes a judged branch point of the tree (no annotator), so snapshots export
its pairs with the full history above it, exactly like the branch points annotators judge.
Imported trees are stored, not queued (overlap 0).

Uploaded through the project's imports page or API (kind "conversations"), with the checks every
import file gets (size, encoding, one JSON object per line, ...). All or nothing: the first problem
is an `Invalid` naming `line N: field '<field>': <problem>`, and nothing is stored.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from feedback_site.annotation.importers import ImportFileError, ImportLimits, parse_jsonl
from feedback_site.annotation.imports import ImportResult
from feedback_site.conversations.models import BranchPoint, ConversationNode, ConversationTask, GenerationStatus, NodeSource, TaskSource
from feedback_site.conversations.services import MAX_TEXT_CHARS, node_create
from feedback_site.core.errors import Invalid
from feedback_site.projects.models import ImportBatch, ImportKind, Project
from feedback_site.projects.permissions import STAFF_ROLES, require_role

MAX_DEPTH = 40
ROOT_FIELDS = {"role", "content", "replies", "system", "metadata"}
NODE_FIELDS = {"role", "content", "replies", "rank"}


class _Bad(Exception):
    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


def _check(message, where: str, expected_role: str, depth: int, root: bool) -> None:
    if not isinstance(message, dict):
        raise _Bad(where or "line", "must be a JSON object (a message with role, content and replies)")
    unknown = set(message) - (ROOT_FIELDS if root else NODE_FIELDS)
    if unknown:
        raise _Bad(f"{where}{sorted(unknown)[0]}", "unknown field")
    if depth > MAX_DEPTH:
        raise _Bad(where or "replies", f"nested deeper than {MAX_DEPTH} turns")
    if message.get("role") != expected_role:
        raise _Bad(f"{where}role", f"must be {expected_role!r} (turns alternate, starting with the user)")
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        raise _Bad(f"{where}content", "must be a non-empty string")
    if len(content) > MAX_TEXT_CHARS:
        raise _Bad(f"{where}content", f"longer than {MAX_TEXT_CHARS} characters")
    if root:
        if not isinstance(message.get("system", ""), str):
            raise _Bad("system", "must be a string")
        if not isinstance(message.get("metadata", {}), dict):
            raise _Bad("metadata", "must be an object")
    replies = message.get("replies", [])
    if not isinstance(replies, list):
        raise _Bad(f"{where}replies", "must be a list of messages")
    next_role = "assistant" if expected_role == "user" else "user"
    ranked = [isinstance(r, dict) and "rank" in r for r in replies]
    if any(ranked):
        if next_role != "assistant":
            raise _Bad(f"{where}replies[{ranked.index(True)}].rank", "only assistant replies are ranked")
        if not all(ranked):
            raise _Bad(f"{where}replies[{ranked.index(False)}].rank", "missing: rank every reply of a ranked group, or none")
        if len(replies) < 2:
            raise _Bad(f"{where}replies[0].rank", "a single reply has nothing to be ranked against")
        for index, reply in enumerate(replies):
            rank = reply["rank"]
            if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
                raise _Bad(f"{where}replies[{index}].rank", "must be an integer >= 0 (0 = best)")
        if len({r["rank"] for r in replies}) < 2:
            raise _Bad(f"{where}replies[0].rank", "every reply has the same rank; a ranking needs a best one")
    for index, reply in enumerate(replies):
        _check(reply, f"{where}replies[{index}].", next_role, depth + 1, False)


def _store(task: ConversationTask, message: dict, parent, now, turn: int = 0) -> ConversationNode:
    """Store `message` and its replies below `parent`; `turn` counts the assistant turns above it,
    so a ranked group of replies becomes the branch point of that turn."""
    node = node_create(task, parent, message["role"], message["content"].replace("\x00", "\ufffd"), NodeSource.IMPORTED)
    replies = message.get("replies", [])
    below = turn + 1 if message["role"] == "assistant" else turn
    children = [_store(task, reply, node, now, below) for reply in replies]
    if replies and "rank" in replies[0]:
        by_rank: dict[int, list[int]] = {}
        for reply, child in zip(replies, children):
            by_rank.setdefault(reply["rank"], []).append(child.pk)
        tiers = [by_rank[rank] for rank in sorted(by_rank)]
        branch_point = BranchPoint.objects.create(
            task=task,
            parent=node,
            turn_index=turn,
            status=GenerationStatus.READY,
            order=tiers,
            chosen_id=tiers[0][0],
            continued_with_id=tiers[0][0],
            ready_at=now,
            judged_at=now,
        )
        ConversationNode.objects.filter(pk__in=[c.pk for c in children]).update(branch_point=branch_point, source=NodeSource.IMPORTED)
    return node


def import_trees(*, project: Project, actor, filename: str, data: bytes, queue_for_annotation: bool | None = None) -> ImportResult:
    """Import the JSON Lines trees of an uploaded file, all or nothing, as an `ImportBatch` (the
    imports page and API, kind "conversations"). Trees are stored, never queued, so
    `queue_for_annotation` is ignored."""
    require_role(actor, project, STAFF_ROLES)
    if len(data) > settings.IMPORT_MAX_BYTES:
        raise Invalid(f"file is {len(data):,} bytes; the limit is {settings.IMPORT_MAX_BYTES:,} bytes", code="too_large")
    # Each turn of a tree nests two levels (a message object in a replies list).
    limits = ImportLimits(max_bytes=settings.IMPORT_MAX_BYTES, max_json_depth=2 * MAX_DEPTH + 2)
    try:
        rows = parse_jsonl(data, filename, limits)
        if not rows:
            raise ImportFileError("the file holds no conversation trees")
        for line, tree in rows:
            try:
                _check(tree, "", "user", 1, True)
            except _Bad as error:
                raise ImportFileError(error.problem, line=line, field=error.field) from None
    except ImportFileError as error:
        raise Invalid(str(error), code="bad_file") from None
    now = timezone.now()
    with transaction.atomic():
        batch = ImportBatch.objects.create(
            project=project,
            kind=ImportKind.CONVERSATIONS,
            filename=filename[:255],
            sha256=hashlib.sha256(data).hexdigest(),
            record_count=len(rows),
            queued_for_annotation=False,
            created_by=actor,
        )
        task_ids = []
        for _, tree in rows:
            task = ConversationTask.objects.create(
                project=project,
                system_prompt=tree.get("system", ""),
                metadata={**tree.get("metadata", {}), "import_batch": batch.pk},
                source=TaskSource.IMPORTED,
                turns=1,
                candidates=2,
                overlap=0,
                is_complete=True,
            )
            task.opening = _store(task, tree, None, now)
            task.save(update_fields=["opening"])
            task_ids.append(task.pk)
        points = BranchPoint.objects.filter(task_id__in=task_ids).count()
        made = f"{len(rows):,} conversation tree{'s' if len(rows) != 1 else ''} with {points:,} ranked branch point{'s' if points != 1 else ''}"
        return ImportResult(batch=batch, prompts=0, pairs=0, made=made)
