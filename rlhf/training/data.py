"""Training data from JSONL: preference records and prompts, checked line by line, and the seeded holdout split."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    pass


from rlhf.types import Conversation

_ROLES = {"system", "user", "assistant", "tool"}


def load_preference_records(path: Path | str) -> list[dict[str, Conversation]]:
    """Read a snapshot JSONL in TRL's conversational preference format, validating every line.

    Each line: `{"prompt": [messages], "chosen": [{"role": "assistant", "content": ...}], "rejected": [...]}`.
    Other keys (ids, annotator metadata) are ignored. Any problem raises ValueError naming the file
    and line, so a person can fix the export instead of guessing which of 2,000 lines is wrong.
    """
    path = Path(path)
    records = []
    for line_number, row in _jsonl_rows(path):
        where = f"{path}, line {line_number}"
        for key in ("prompt", "chosen", "rejected"):
            if key not in row:
                raise ValueError(f"{where}: missing key {key!r} (expected prompt, chosen and rejected)")
        prompt = _conversation(row["prompt"], f"{where}: 'prompt'")
        chosen = _conversation(row["chosen"], f"{where}: 'chosen'", assistant_only=True)
        rejected = _conversation(row["rejected"], f"{where}: 'rejected'", assistant_only=True)
        if prompt[-1]["role"] == "assistant":
            raise ValueError(f"{where}: 'prompt' must not end with an assistant message (the answer is in chosen/rejected)")
        records.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    if not records:
        raise ValueError(f"{path}: no records (the file is empty)")
    return records


def load_kto_examples(path: Path | str) -> list[list[dict[str, Any]]]:
    """Read KTO training data: per line, the unpaired examples it holds, validating every line.

    A line is either one rated answer in TRL's unpaired format, `{"prompt": [messages],
    "completion": [{"role": "assistant", ...}], "label": true|false}` (thumbs up / down), or a
    preference pair (`prompt`, `chosen`, `rejected`), which gives two examples: chosen desirable,
    rejected undesirable (TRL's `unpair_preference_dataset`). The two of a pair stay together in
    one group so a held-out split never trains on one half and scores the other. ValueError names
    the file, line and problem.
    """
    path = Path(path)
    groups: list[list[dict[str, Any]]] = []
    for line_number, row in _jsonl_rows(path):
        where = f"{path}, line {line_number}"
        if "prompt" not in row:
            raise ValueError(f"{where}: missing key 'prompt' (expected prompt, completion and label, or prompt, chosen and rejected)")
        prompt = _conversation(row["prompt"], f"{where}: 'prompt'")
        if prompt[-1]["role"] == "assistant":
            raise ValueError(f"{where}: 'prompt' must not end with an assistant message (the answer is in completion)")
        if "chosen" in row or "rejected" in row:
            for key in ("chosen", "rejected"):
                if key not in row:
                    raise ValueError(f"{where}: a pair needs both 'chosen' and 'rejected' (missing {key!r})")
            groups.append(
                [
                    {
                        "prompt": prompt,
                        "completion": _conversation(row["chosen"], f"{where}: 'chosen'", assistant_only=True),
                        "label": True,
                    },
                    {
                        "prompt": prompt,
                        "completion": _conversation(row["rejected"], f"{where}: 'rejected'", assistant_only=True),
                        "label": False,
                    },
                ]
            )
            continue
        for key in ("completion", "label"):
            if key not in row:
                raise ValueError(f"{where}: missing key {key!r} (expected prompt, completion and label)")
        if not isinstance(row["label"], bool):
            raise ValueError(f"{where}: 'label' must be true (desirable) or false (undesirable), got {row['label']!r}")
        completion = _conversation(row["completion"], f"{where}: 'completion'", assistant_only=True)
        groups.append([{"prompt": prompt, "completion": completion, "label": row["label"]}])
    if not groups:
        raise ValueError(f"{path}: no examples (the file is empty)")
    return groups


def flatten_shuffled(groups: Sequence[Sequence[dict[str, Any]]], seed: int) -> list[dict[str, Any]]:
    """The examples of `groups` in one seeded random order.

    KTO estimates its KL term from mismatched (prompt, answer) neighbours within a batch, so the
    two answers of a pair should not sit next to each other (as they would unshuffled), and
    desirable and undesirable examples should mix in every batch.
    """
    examples = [example for group in groups for example in group]
    random.Random(seed).shuffle(examples)
    return examples


def load_prompts(path: Path | str) -> list[Conversation]:
    """Prompts for the RL methods, from a preference snapshot or a prompt-only JSONL (`{"prompt": [...]}`).

    A snapshot repeats a prompt once per compared pair; RL needs each prompt once (duplicates
    would silently weight some prompts more), so they are de-duplicated keeping first-seen order.
    """
    path = Path(path)
    seen: set[str] = set()
    prompts: list[Conversation] = []
    for line_number, row in _jsonl_rows(path):
        where = f"{path}, line {line_number}"
        if "prompt" not in row:
            raise ValueError(f"{where}: missing key 'prompt'")
        prompt = _conversation(row["prompt"], f"{where}: 'prompt'")
        if prompt[-1]["role"] == "assistant":
            raise ValueError(f"{where}: 'prompt' must not end with an assistant message")
        key = json.dumps(prompt, sort_keys=True)
        if key not in seen:
            seen.add(key)
            prompts.append(prompt)
    if not prompts:
        raise ValueError(f"{path}: no prompts (the file is empty)")
    return prompts


def _jsonl_rows(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {line_number}: not valid JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}, line {line_number}: expected a JSON object, got {type(row).__name__}")
            yield line_number, row


def _conversation(value: Any, where: str, assistant_only: bool = False) -> Conversation:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where} must be a non-empty list of messages")
    messages = []
    for index, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
            raise ValueError(f"{where}[{index}] must be an object with string 'role' and 'content'")
        role = message["role"]
        if role not in _ROLES:
            raise ValueError(f"{where}[{index}] has unknown role {role!r} (expected one of {sorted(_ROLES)})")
        if assistant_only and role != "assistant":
            raise ValueError(f"{where}[{index}] must have role 'assistant', got {role!r}")
        messages.append({"role": role, "content": message["content"]})
    return messages


def split_holdout(records: Sequence[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Seeded split into (train, held-out); the held-out part is never trained on.

    At least one record stays in training; with `fraction == 0` nothing is held out.
    """
    indices = list(range(len(records)))
    random.Random(seed).shuffle(indices)
    count = min(int(round(len(records) * fraction)), len(records) - 1) if fraction > 0 else 0
    held = set(indices[:count])
    train = [record for index, record in enumerate(records) if index not in held]
    holdout = [record for index, record in enumerate(records) if index in held]
    return train, holdout
