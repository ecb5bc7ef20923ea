"""Parsing ranking files (JSON Lines): pure parsing, no database, every problem names its line.

One object per line: the prompt fields of a prompts file (`prompt`/`text`, `system`, `history`,
or `messages`; `id`, `metadata`), then

    "answers":           3 to 9 different answers: strings, or {"text": ...} objects
    "order":             optional: the ranking, tiers of answer indices (0-based) best first,
                         e.g. [[2], [0, 3], [1]] (0 and 3 tie); every answer exactly once
    "all_unacceptable":  optional, true: no answer is acceptable (the ranking prefers nothing)
    "gold":              optional, true: a gold task; `order` is its known ranking

    {"prompt": "Name a colour.", "answers": ["red", "blue", "the sky"], "order": [[0, 1], [2]]}

Lines that repeat the same prompt and answers (an export with several annotators' rankings of one
answer set) become one task with each line's ranking. The fields an export adds to each line
(`task_id`, `response_ids`, `annotator`, `strength`, `rationale`, `order_shown`, `time_spent_ms`,
`created_at`, `accepted_after_expiry`, `excluded`) are accepted and ignored, so an export imports back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from feedback_site.annotation.importers import (
    DEFAULT_LIMITS,
    PROMPT_FIELDS,
    ImportFileError,
    ImportLimits,
    PromptRecord,
    check_fields,
    parse_jsonl,
    prompt_of_record,
    text_of_field,
)
from rlhf.rankings import validate_tiers

MIN_ANSWERS, MAX_ANSWERS = 3, 9
EXPORT_ONLY_FIELDS = frozenset(
    {
        "task_id",
        "response_ids",
        "annotator",
        "strength",
        "rationale",
        "order_shown",
        "time_spent_ms",
        "created_at",
        "accepted_after_expiry",
        "excluded",
    }
)
FIELDS = PROMPT_FIELDS | {"answers", "order", "all_unacceptable", "gold"} | EXPORT_ONLY_FIELDS


@dataclass
class RankingRecord:
    """One answer set to rank, with the rankings the file gives for it (tiers of answer indices)."""

    line: int
    prompt: PromptRecord
    answers: tuple[str, ...]
    rankings: list[tuple[list[list[int]], bool]] = field(default_factory=list)
    gold: bool = False


def _answers(value, line: int, limits: ImportLimits) -> tuple[str, ...]:
    if not isinstance(value, list) or not MIN_ANSWERS <= len(value) <= MAX_ANSWERS:
        raise ImportFileError(f"must be a list of {MIN_ANSWERS} to {MAX_ANSWERS} answers", line=line, field="answers")
    texts = []
    for index, item in enumerate(value):
        if isinstance(item, dict):
            check_fields(item, frozenset({"text", "response_id"}), line)
            item = item.get("text")
        texts.append(text_of_field(item, f"answers[{index}]", line, limits))
    seen: dict[str, int] = {}
    for index, text in enumerate(texts):
        if text in seen:
            raise ImportFileError(f"repeats answers[{seen[text]}]; every answer must differ", line=line, field=f"answers[{index}]")
        seen[text] = index
    return tuple(texts)


def _order(value, count: int, line: int) -> list[list[int]]:
    if not isinstance(value, list) or not all(isinstance(tier, list) for tier in value):
        raise ImportFileError("must be a list of tiers (lists of answer indices), best first", line=line, field="order")
    for tier_index, tier in enumerate(value):
        for answer in tier:
            if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < count:
                raise ImportFileError(f"{answer!r} is not an answer index (0 to {count - 1})", line=line, field=f"order[{tier_index}]")
    try:
        validate_tiers(value, list(range(count)))
    except ValueError as error:
        raise ImportFileError(str(error).removeprefix("order: ").removeprefix("order"), line=line, field="order") from None
    return [sorted(tier) for tier in value]


def parse_rankings(data: bytes, filename: str | None, limits: ImportLimits = DEFAULT_LIMITS) -> list[RankingRecord]:
    """The whole file checked first; the first problem raises ImportFileError naming its line."""
    records: dict[tuple, RankingRecord] = {}
    for line, obj in parse_jsonl(data, filename, limits):
        check_fields(obj, FIELDS, line)
        prompt = prompt_of_record(obj, line, limits)
        if "answers" not in obj:
            raise ImportFileError("missing required field", line=line, field="answers")
        answers = _answers(obj["answers"], line, limits)
        unacceptable = obj.get("all_unacceptable", False)
        if not isinstance(unacceptable, bool):
            raise ImportFileError("must be true or false", line=line, field="all_unacceptable")
        gold = obj.get("gold", False)
        if not isinstance(gold, bool):
            raise ImportFileError("must be true or false", line=line, field="gold")
        order = None if obj.get("order") is None else _order(obj["order"], len(answers), line)
        if gold and order is None:
            raise ImportFileError("a gold task needs its known ranking in 'order'", line=line, field="order")
        if unacceptable and order is None:
            order = [list(range(len(answers)))]
        key = (tuple(m["role"] + "\0" + m["content"] for m in prompt.to_messages()), tuple(sorted(answers)))
        record = records.get(key)
        if record is None:
            record = records[key] = RankingRecord(line=line, prompt=prompt, answers=answers, gold=gold)
        elif record.gold != gold:
            raise ImportFileError(f"the same prompt and answers as line {record.line}, once as gold and once not", line=line, field="gold")
        if order is not None:
            # Indices of this line's answers, mapped onto the first line's order of the same answers.
            index_of = {text: i for i, text in enumerate(record.answers)}
            record.rankings.append(([sorted(index_of[answers[i]] for i in tier) for tier in order], unacceptable))
    if not records:
        raise ImportFileError("the file holds no rankings")
    return list(records.values())
