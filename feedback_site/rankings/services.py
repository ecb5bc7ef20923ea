"""Every write of rankings: queue answer sets, lease the next one, submit a ranking, skip, renew.

A ranking task is a task kind (`RANKING`) of the one lease queue (`feedback_site.annotation.queue`)
with all its guarantees: `overlap` distinct annotators, short renewable leases, never
over-assigned, idempotent submit, late submit kept or refused, priorities, holds, gold rankings
mixed in at the project's gold rate (a gold ranking is correct when it reverses none of the gold
order's pairs; low accuracy pauses the annotator as for pairs), and dynamic overlap on the whole
ranking (two rankings, a third only when they differ).

A submit states each shown answer's rank, 1 = best, equal numbers for a tie:
`ranks = [{"response_id": 12, "rank": 1}, {"response_id": 15, "rank": 2}, ...]`; or
`all_unacceptable = true` (ranks may then be left out: no answer is preferred).
"""

from __future__ import annotations

from datetime import datetime

from feedback_site.annotation import queue
from feedback_site.annotation.models import Response, Strength
from feedback_site.annotation.rendered import fill_rows
from feedback_site.annotation.selectors import shown_to_people
from feedback_site.core.errors import Invalid
from feedback_site.projects.models import Project
from feedback_site.projects.permissions import STAFF_ROLES, require_role
from feedback_site.rankings.models import Ranking, RankingAssignment, RankingSource, RankingTask, new_display_seed, shown_order
from rlhf.rankings import Tiers, positions, ranking_pairs

MIN_ANSWERS, MAX_ANSWERS = 3, 9
MAX_RATIONALE_CHARS = 5_000
MAX_TIME_SPENT_MS = 86_400_000


def gold_accuracy_of(project_id: int, user_id: int) -> tuple[int, int]:
    """(correct, judged) over one annotator's rankings of the project's gold ranking tasks."""
    rows = Ranking.objects.filter(task__project_id=project_id, task__is_gold=True, annotator_id=user_id)
    return rows.filter(gold_correct=True).count(), rows.count()


RANKING = queue.register(
    queue.TaskKind(
        name="ranking",
        task_model=RankingTask,
        lease_model=RankingAssignment,
        result_model=Ranking,
        task_field="task",
        count_field="submitted_count",
        noun="ranking task",
        result_noun="rankings",
        has_gold=True,
        agreement_field="order_key",
        new_lease=new_display_seed,
        recheck_membership=True,
        gold_accuracy=gold_accuracy_of,
    )
)


# ---------------------------------------------------------------------------------------------
# Rankings as data (no database)
# ---------------------------------------------------------------------------------------------


def order_key(tiers: Tiers, all_unacceptable: bool) -> str:
    """Canonical text of a ranking: equal keys are the same ranking ("3>1=4>2")."""
    if all_unacceptable:
        return "unacceptable"
    return ">".join("=".join(str(answer) for answer in sorted(tier)) for tier in tiers)


def tiers_from_ranks(ranks, shown: list[int]) -> list[list[int]]:
    """The tiers a list of {"response_id", "rank"} states, or Invalid naming the field: every
    shown answer once, each rank an integer from 1 to K (equal ranks tie)."""
    k = len(shown)
    if not isinstance(ranks, list):
        raise Invalid('ranks: must be a list of {"response_id": id, "rank": 1..K}', code="bad_ranks")
    by_answer: dict[int, int] = {}
    shown_set = set(shown)
    for index, item in enumerate(ranks):
        if not isinstance(item, dict) or set(item) != {"response_id", "rank"}:
            raise Invalid(f'ranks[{index}]: must be {{"response_id": id, "rank": 1..{k}}}', code="bad_ranks")
        answer, rank = item["response_id"], item["rank"]
        if isinstance(answer, bool) or not isinstance(answer, int) or answer not in shown_set:
            raise Invalid(f"ranks[{index}].response_id: {answer!r} is not one of the answers shown", code="bad_ranks")
        if answer in by_answer:
            raise Invalid(f"ranks[{index}].response_id: answer {answer} is ranked twice", code="bad_ranks")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= k:
            raise Invalid(f"ranks[{index}].rank: {rank!r} is out of range (1 to {k}, 1 = best)", code="bad_ranks")
        by_answer[answer] = rank
    missing = [answer for answer in shown if answer not in by_answer]
    if missing:
        raise Invalid(f"ranks: answer {missing[0]} has no rank (rank every answer shown)", code="bad_ranks")
    return [sorted(a for a, r in by_answer.items() if r == rank) for rank in sorted(set(by_answer.values()))]


def gold_correct(tiers: Tiers, all_unacceptable: bool, gold: Tiers) -> bool:
    """A ranking of a gold task is correct when it reverses none of the pairs the gold order
    states (ties on either side are not reversals); "all unacceptable" is correct only for a gold
    order that prefers nothing."""
    gold_pairs = ranking_pairs(gold)
    if all_unacceptable:
        return not gold_pairs
    placed = positions(tiers)
    return all(placed[winner] <= placed[loser] for winner, loser in gold_pairs)


# ---------------------------------------------------------------------------------------------
# Queueing
# ---------------------------------------------------------------------------------------------


def _answer_key(response_ids: list[int]) -> str:
    return ",".join(str(i) for i in sorted(response_ids))


def queue_answer_sets(*, project: Project, answer_sets: list[list[int]], overlap: int, generation_run=None) -> int:
    """One ranking task per answer set (response ids of one prompt of `project`, checked by the
    caller). Answers hidden by the safety screen and repeated texts are left out; a set left with
    fewer than 3 answers is not queued. Idempotent: a set already queued is skipped. Returns how
    many tasks were added."""
    ids = [pk for answer_set in answer_sets for pk in answer_set]
    # One read for every set: the visible answers' texts and prompts (hidden ones are absent).
    visible = {
        pk: (text, prompt_id)
        for pk, text, prompt_id in shown_to_people(Response.objects.filter(pk__in=ids)).values_list("pk", "text", "prompt_id")
    }
    texts = {pk: text for pk, (text, _) in visible.items()}
    prompts = {pk: prompt_id for pk, (_, prompt_id) in visible.items()}
    tasks = []
    for answer_set in answer_sets:
        seen_texts: set[str] = set()
        kept = []
        for pk in (pk for pk in answer_set if pk in visible):
            if texts[pk] not in seen_texts:  # two identical samples are not a comparison
                seen_texts.add(texts[pk])
                kept.append(pk)
        if len(kept) < MIN_ANSWERS:
            continue
        kept = kept[:MAX_ANSWERS]
        tasks.append(
            RankingTask(
                project=project,
                prompt_id=prompts[kept[0]],
                response_ids=kept,
                answer_key=_answer_key(kept),
                overlap=overlap,
                generation_run=generation_run,
            )
        )
    existing = set(
        RankingTask.objects.filter(project=project, answer_key__in=[t.answer_key for t in tasks]).values_list("answer_key", flat=True)
    )
    tasks = [t for t in tasks if t.answer_key not in existing]
    RankingTask.objects.bulk_create(tasks, ignore_conflicts=True)
    return len(tasks)


def tasks_create(
    *, project: Project, actor, answer_sets: list | None = None, generation_run_id: int | None = None, overlap: int | None = None
) -> int:
    """Staff queue ranking tasks: the given answer sets (lists of 3–9 response ids, each of one
    prompt), or every prompt's answers of one generation run. Returns how many were added."""
    require_role(actor, project, STAFF_ROLES)
    overlap = project.overlap if overlap is None else overlap
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 1 <= overlap <= 20:
        raise Invalid("overlap: must be an integer between 1 and 20", code="bad_overlap")
    if answer_sets is not None:
        sets = _checked_answer_sets(project, answer_sets)
    elif generation_run_id is not None:
        if isinstance(generation_run_id, bool) or not isinstance(generation_run_id, int):
            raise Invalid("generation_run_id: must be an integer", code="bad_generation_run_id")
        by_prompt: dict[int, list[int]] = {}
        rows = Response.objects.filter(prompt__project=project, generation_run_id=generation_run_id).order_by(
            "prompt_id", "sample_index", "id"
        )
        for pk, prompt_id in rows.values_list("pk", "prompt_id"):
            by_prompt.setdefault(prompt_id, []).append(pk)
        if not by_prompt:
            raise Invalid(f"generation_run_id: run {generation_run_id} has no answers in this project", code="bad_generation_run_id")
        sets = [answers[:MAX_ANSWERS] for answers in by_prompt.values()]
    else:
        raise Invalid("give answer_sets or generation_run_id", code="bad_answer_sets")
    return queue_answer_sets(project=project, answer_sets=sets, overlap=overlap)


def _checked_answer_sets(project: Project, answer_sets) -> list[list[int]]:
    if not isinstance(answer_sets, list) or not answer_sets:
        raise Invalid("answer_sets: must be a non-empty list of lists of response ids", code="bad_answer_sets")
    all_ids = []
    for index, answer_set in enumerate(answer_sets):
        if not isinstance(answer_set, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in answer_set):
            raise Invalid(f"answer_sets[{index}]: must be a list of response ids", code="bad_answer_sets")
        if not MIN_ANSWERS <= len(set(answer_set)) == len(answer_set) <= MAX_ANSWERS:
            raise Invalid(f"answer_sets[{index}]: must hold {MIN_ANSWERS} to {MAX_ANSWERS} different response ids", code="bad_answer_sets")
        all_ids.extend(answer_set)
    prompt_of = dict(Response.objects.filter(prompt__project=project, pk__in=all_ids).values_list("pk", "prompt_id"))
    for index, answer_set in enumerate(answer_sets):
        missing = [pk for pk in answer_set if pk not in prompt_of]
        if missing:
            raise Invalid(f"answer_sets[{index}]: response {missing[0]} is not an answer of this project", code="bad_answer_sets")
        if len({prompt_of[pk] for pk in answer_set}) != 1:
            raise Invalid(f"answer_sets[{index}]: the answers must all reply to the same prompt", code="bad_answer_sets")
    return answer_sets


# ---------------------------------------------------------------------------------------------
# The annotator's side
# ---------------------------------------------------------------------------------------------


def payload(assignment: RankingAssignment) -> dict:
    """What the ranking page shows: the conversation and the answers in the lease's order."""
    task = assignment.task
    prompt = task.prompt
    order = assignment.order_shown
    responses = {r.pk: r for r in Response.objects.filter(pk__in=order)}
    if prompt.text_html is None or prompt.history_html is None:
        fill_rows(prompts=[(prompt.pk, prompt.text, prompt.history)])
        prompt.refresh_from_db(fields=["text_html", "history_html"])
    unrendered = [(r.pk, r.text) for r in responses.values() if r.text_html is None]
    if unrendered:
        fill_rows(responses=unrendered)
        responses = {r.pk: r for r in Response.objects.filter(pk__in=order)}
    return {
        "assignment_id": assignment.pk,
        "task_id": task.pk,
        "prompt": {
            "system_prompt": prompt.system_prompt,
            "history": [{"role": turn["role"], "html": html} for turn, html in zip(prompt.history, prompt.history_html)],
            "html": prompt.text_html,
        },
        "answers": [
            {
                "response_id": pk,
                "label": chr(ord("A") + index),
                "html": responses[pk].text_html,
                "safety_flag": responses[pk].warning or None,
            }
            for index, pk in enumerate(order)
        ],
        "strengths": [{"value": value, "label": label} for value, label in Strength.choices],
        "expires_at": assignment.expires_at.isoformat(),
        "lease_seconds": task.project.lease_seconds,
    }


def next_task(*, project: Project, annotator, now: datetime | None = None) -> RankingAssignment | None:
    """The annotator's open lease (renewed), or a new lease on the next answer set; None when done."""
    leased = queue.lease_next(RANKING, project=project, annotator=annotator, now=now)
    return None if leased is None else leased.assignment


def _validate_extras(all_unacceptable, strength, rationale, time_spent_ms) -> None:
    if not isinstance(all_unacceptable, bool):
        raise Invalid("all_unacceptable: must be true or false", code="bad_all_unacceptable")
    if strength not in ("", None, *Strength.values):
        raise Invalid(f"strength: must be one of {', '.join(Strength.values)} or empty", code="bad_strength")
    if not isinstance(rationale, str) or len(rationale) > MAX_RATIONALE_CHARS:
        raise Invalid(f"rationale: must be text of at most {MAX_RATIONALE_CHARS} characters", code="bad_rationale")
    if time_spent_ms is not None and (
        isinstance(time_spent_ms, bool) or not isinstance(time_spent_ms, int) or not 0 <= time_spent_ms <= MAX_TIME_SPENT_MS
    ):
        raise Invalid(f"time_spent_ms: must be an integer between 0 and {MAX_TIME_SPENT_MS}", code="bad_time_spent_ms")


def submit(
    *,
    assignment_id: int,
    annotator,
    ranks=None,
    all_unacceptable=False,
    strength: str | None = "",
    rationale: str = "",
    time_spent_ms=None,
    now: datetime | None = None,
) -> tuple[Ranking, bool]:
    """Store the ranking; returns (ranking, created). A repeat returns the first. Ownership is
    checked before the body, so a stranger learns nothing from validation errors."""

    def validate(project: Project) -> None:
        _validate_extras(all_unacceptable, strength, rationale, time_spent_ms)

    def store(lease: RankingAssignment, task: RankingTask, late: bool) -> Ranking:
        # The ranks are checked against the answers this lease showed: here, where the lease is at
        # hand (an Invalid rolls the whole submit back, nothing is stored).
        shown = shown_order(task.response_ids, lease.display_seed)
        tiers = [sorted(shown)] if all_unacceptable and not ranks else tiers_from_ranks(ranks, shown)
        return Ranking.objects.create(
            assignment=lease,
            task=task,
            annotator=annotator,
            tiers=tiers,
            order_key=order_key(tiers, all_unacceptable),
            all_unacceptable=all_unacceptable,
            strength=strength or "",
            rationale=rationale.strip().replace("\x00", "\ufffd"),
            order_shown=shown,
            gold_correct=gold_correct(tiers, all_unacceptable, task.gold_order) if task.is_gold else None,
            time_spent_ms=time_spent_ms,
            accepted_after_expiry=late,
        )

    return queue.result_submit(RANKING, lease_id=assignment_id, annotator=annotator, validate=validate, store=store, now=now)


def skip(*, assignment_id: int, annotator, now: datetime | None = None) -> RankingAssignment:
    """Give the answer set back; this annotator will not be offered it again. Idempotent."""
    return queue.lease_skip(RANKING, lease_id=assignment_id, annotator=annotator, now=now)


def renew(*, assignment_id: int, annotator, now: datetime | None = None) -> RankingAssignment:
    """The page's heartbeat: keep the lease while the annotator is ranking."""
    return queue.lease_renew(RANKING, lease_id=assignment_id, annotator=annotator, now=now)


__all__ = [
    "MAX_ANSWERS",
    "MIN_ANSWERS",
    "RANKING",
    "RankingSource",
    "gold_accuracy_of",
    "gold_correct",
    "next_task",
    "order_key",
    "payload",
    "queue_answer_sets",
    "renew",
    "skip",
    "submit",
    "tasks_create",
    "tiers_from_ranks",
]
