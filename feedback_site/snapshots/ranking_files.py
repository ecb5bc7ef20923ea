"""The rankings part of a snapshot: raw rankings kept, expanded to preference pairs for TRL.

For every ranking task of the project's training prompts that has rankings (or, with
`include_prelabelled`, imported rankings and none collected):

  rankings.jsonl       one line per ranking, in the ranking import format (so it imports back):
                       prompt as `messages`, `answers` (texts) with their `response_ids`, `order`
                       (tiers of answer indices, best first), `all_unacceptable`, the pseudonymous
                       `annotator`, `strength`, `rationale`, `order_shown` (answer indices in the
                       order the page showed them), `time_spent_ms`, `excluded` (the snapshot
                       options' reasons: such a ranking is kept here but does not vote)
  ranking_pairs.jsonl  the expansion (rlhf.rankings.expand): one line per decided answer pair,
                       `chosen_response_id`, `rejected_response_id`, `votes_for`,
                       `votes_against`, `weight` (1 / decided pairs of the task), `basis`
  preferences.jsonl    each expanded pair as a TRL conversational preference row, after the
                       pairs' rows (the `weight` is in ranking_pairs.jsonl; TRL's trainers see
                       every pair once)

Rankings of a task are streamed in task order with a second query merged in, like the pairs'
judgments, so memory stays flat.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q

from feedback_site.annotation.models import Response, Split
from feedback_site.core.hashing import pseudonym
from feedback_site.projects.models import Project
from feedback_site.rankings.models import Ranking, RankingTask
from rlhf.rankings import expand

RANKING_FILES = ("rankings.jsonl", "ranking_pairs.jsonl")
_CHUNK = 500


@dataclass
class RankingCounts:
    tasks: int = 0
    rankings: int = 0
    excluded: int = 0
    pairs: int = 0


def ranking_tasks_to_write(project: Project, include_prelabelled: bool):
    condition = Exists(Ranking.objects.filter(task=OuterRef("pk")))
    if include_prelabelled:
        condition |= ~Q(prelabels=[])
    return RankingTask.objects.filter(project=project, prompt__split=Split.TRAIN).filter(condition)


def _iter_task_rankings(project: Project, include_prelabelled: bool):
    tasks = ranking_tasks_to_write(project, include_prelabelled).select_related("prompt").order_by("id").iterator(chunk_size=_CHUNK)
    rankings = Ranking.objects.filter(task__project=project).order_by("task_id", "id").iterator(chunk_size=5000)
    pending = next(rankings, None)
    for task in tasks:
        mine = []
        while pending is not None and pending.task_id <= task.pk:
            if pending.task_id == task.pk:
                mine.append(pending)
            pending = next(rankings, None)
        yield task, mine


def _chunks(items, size: int):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_rankings(
    project: Project,
    include_prelabelled: bool,
    excluded: Callable[[Ranking], list[str]],
    rankings_out,
    pairs_out,
    emit_preference: Callable[[dict], None],
) -> RankingCounts:
    """Writes the two ranking files and hands each expanded pair to `emit_preference`."""
    counts = RankingCounts()
    for chunk in _chunks(_iter_task_rankings(project, include_prelabelled), _CHUNK):
        ids = {pk for task, _ in chunk for pk in task.response_ids}
        texts = dict(Response.objects.filter(pk__in=ids).values_list("pk", "text"))
        for task, rankings in chunk:
            counts.tasks += 1
            prompt = task.prompt.messages()
            answers = [texts[pk] for pk in task.response_ids]
            index = {pk: i for i, pk in enumerate(task.response_ids)}
            votes = []
            for ranking in rankings:
                reasons = excluded(ranking)
                counts.rankings += 1
                counts.excluded += bool(reasons)
                if not reasons:
                    votes.append((ranking.tiers, ranking.all_unacceptable))
                rankings_out.write(
                    json.dumps(
                        {
                            "task_id": task.pk,
                            "messages": prompt,
                            "answers": answers,
                            "response_ids": task.response_ids,
                            "order": [sorted(index[pk] for pk in tier) for tier in ranking.tiers],
                            "all_unacceptable": ranking.all_unacceptable,
                            "annotator": pseudonym(project.pk, ranking.annotator_id),
                            "strength": ranking.strength or None,
                            "rationale": ranking.rationale,
                            "order_shown": [index[pk] for pk in ranking.order_shown],
                            "time_spent_ms": ranking.time_spent_ms,
                            "accepted_after_expiry": ranking.accepted_after_expiry,
                            "created_at": ranking.created_at.isoformat(),
                            "excluded": reasons,
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
            basis = "rankings"
            if not rankings and include_prelabelled:
                basis = "import_label"
                votes = [(label["order"], label["all_unacceptable"]) for label in task.prelabels]
            for pair in expand(votes):
                counts.pairs += 1
                pairs_out.write(
                    json.dumps(
                        {
                            "task_id": task.pk,
                            "chosen_response_id": pair.chosen,
                            "rejected_response_id": pair.rejected,
                            "votes_for": pair.votes_for,
                            "votes_against": pair.votes_against,
                            "weight": pair.weight,
                            "basis": basis,
                        }
                    )
                    + "\n"
                )
                emit_preference(
                    {
                        "prompt": prompt,
                        "chosen": [{"role": "assistant", "content": texts[pair.chosen]}],
                        "rejected": [{"role": "assistant", "content": texts[pair.rejected]}],
                    }
                )
    return counts
