"""The conversations part of a snapshot: every judged branch point of the project's conversation
trees, expanded to pairs (`conversations.snapshots.export_rows`: the full history as the prompt,
`rlhf.rankings.expand` of the turn's ranking), appended to the preference files DPO and reward
models train on, and listed with their ids in `conversation_pairs.jsonl`.

Branch points of imported trees (no annotator) count as pre-labelled: included with
`include_prelabelled`, like imported pairs and rankings. Memory: the export holds the project's
judged branch points and their nodes (conversation data is small next to pair judgments).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from feedback_site.conversations.snapshots import export_rows
from feedback_site.projects.models import Project

CONVERSATION_FILES = ("conversation_pairs.jsonl",)
_PREFERENCE_KEYS = ("prompt", "chosen", "rejected")


def write_conversations(project: Project, include_prelabelled: bool, pairs_out, emit_preference: Callable[[dict], None]) -> int:
    """Writes conversation_pairs.jsonl, hands each pair to `emit_preference`; returns the pair count."""
    rows, _ = export_rows(project)
    written = 0
    for row in rows:
        if row["annotator"] is None and not include_prelabelled:
            continue
        pairs_out.write(json.dumps(row, ensure_ascii=False) + "\n")
        emit_preference({key: row[key] for key in _PREFERENCE_KEYS})
        written += 1
    return written
