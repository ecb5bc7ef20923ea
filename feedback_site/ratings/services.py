"""Every write of ratings: queue answers to rate, lease the next one, submit, skip, snapshot.

A rating task is a task kind (`RATING`) of the one lease queue (`feedback_site.annotation.queue`),
with all its guarantees: `overlap` distinct raters, short renewable leases, never over-assigned,
idempotent submit, late submit kept or refused, priorities, pauses, and dynamic overlap on the
label (two ratings, a third only when they disagree). Ratings have no gold yet.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path

from feedback_site.annotation import queue
from feedback_site.annotation.models import Response, Split
from feedback_site.annotation.rendered import fill_rows
from feedback_site.annotation.selectors import shown_to_people
from feedback_site.core.errors import Invalid
from feedback_site.core.frozen import freeze_rows, verified_path
from feedback_site.core.hashing import pseudonym
from feedback_site.projects.models import Project
from feedback_site.projects.permissions import STAFF_ROLES, require_role
from feedback_site.ratings.models import AnswerRating, AnswerSource, Rating, RatingAssignment, RatingSnapshot, RatingTask

MAX_REASON_CHARS = 2_000
MAX_TIME_SPENT_MS = 86_400_000

RATING = queue.register(
    queue.TaskKind(
        name="rating",
        task_model=RatingTask,
        lease_model=RatingAssignment,
        result_model=Rating,
        task_field="task",
        count_field="submitted_count",
        noun="answer",
        result_noun="ratings",
        agreement_field="label",
        recheck_membership=True,
    )
)


def tasks_create(
    *,
    project: Project,
    actor,
    response_ids: list[int] | None = None,
    generation_run_id: int | None = None,
    overlap: int | None = None,
) -> int:
    """Queue answers of the project for rating; returns how many were added.

    By default every answer to a training prompt; `generation_run_id` takes one run's answers,
    `response_ids` a given list. Idempotent: an answer already queued is skipped. Answers the
    safety screen hides (or sends to review) are never queued."""
    require_role(actor, project, STAFF_ROLES)
    overlap = project.overlap if overlap is None else overlap
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 1 <= overlap <= 20:
        raise Invalid("overlap must be an integer between 1 and 20", code="bad_overlap")
    responses = Response.objects.filter(prompt__project=project)
    if response_ids is not None:
        if not isinstance(response_ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in response_ids):
            raise Invalid("response_ids must be a list of response ids", code="bad_response_ids")
        responses = responses.filter(pk__in=response_ids)
        missing = set(response_ids) - set(responses.values_list("pk", flat=True))
        if missing:
            raise Invalid(f"response(s) {sorted(missing)[:5]} are not answers of this project", code="bad_response_ids")
    elif generation_run_id is not None:
        if isinstance(generation_run_id, bool) or not isinstance(generation_run_id, int):
            raise Invalid("generation_run_id must be an integer", code="bad_generation_run_id")
        responses = responses.filter(generation_run_id=generation_run_id)
        if not responses.exists():
            raise Invalid(f"generation run {generation_run_id} has no answers in this project", code="bad_generation_run_id")
    else:
        responses = responses.filter(prompt__split=Split.TRAIN)
    return _queue(project, responses, overlap)


def queue_for_rating(*, project: Project, response_ids: list[int], overlap: int) -> int:
    """Queue the given answers of `project` (checked by the caller) for rating; returns how many
    were added. Idempotent; answers the safety screen hides (or sends to review) are skipped.
    A generation run that rates its answers calls this right after its safety screen."""
    return _queue(project, Response.objects.filter(prompt__project=project, pk__in=response_ids), overlap)


def _queue(project: Project, responses, overlap: int) -> int:
    # The same rule as demonstrations' "correct" mode: a hidden answer is never shown to a person.
    responses = shown_to_people(responses)
    responses = responses.exclude(rating_tasks__isnull=False).order_by("id")
    tasks = [RatingTask(project=project, response_id=pk, overlap=overlap) for pk in responses.values_list("pk", flat=True)]
    RatingTask.objects.bulk_create(tasks, ignore_conflicts=True)
    return len(tasks)


def payload(assignment: RatingAssignment) -> dict:
    """What the rating page shows: the conversation and the answer, as sanitised HTML."""
    response = assignment.task.response
    prompt = response.prompt
    if prompt.text_html is None or prompt.history_html is None:
        fill_rows(prompts=[(prompt.pk, prompt.text, prompt.history)])
        prompt.refresh_from_db(fields=["text_html", "history_html"])
    if response.text_html is None:
        fill_rows(responses=[(response.pk, response.text)])
        response.refresh_from_db(fields=["text_html"])
    return {
        "assignment_id": assignment.pk,
        "task_id": assignment.task_id,
        "response_id": response.pk,
        "prompt": {
            "system_prompt": prompt.system_prompt,
            "history": [{"role": turn["role"], "html": html} for turn, html in zip(prompt.history, prompt.history_html)],
            "html": prompt.text_html,
        },
        "answer_html": response.text_html,
        "safety_flag": response.warning or None,
        "expires_at": assignment.expires_at.isoformat(),
        "lease_seconds": assignment.task.project.lease_seconds,
    }


def next_task(*, project: Project, annotator, now: datetime | None = None) -> RatingAssignment | None:
    """The annotator's open lease (renewed), or a new lease on the next answer; None when done."""
    leased = queue.lease_next(RATING, project=project, annotator=annotator, now=now)
    return None if leased is None else leased.assignment


def _clean_reason(reason: str) -> str:
    return reason.strip().replace("\x00", "\ufffd")


def _validate(label, reason, time_spent_ms) -> None:
    if not isinstance(label, bool):
        raise Invalid("label: must be true (thumbs up) or false (thumbs down)", code="bad_label")
    if not isinstance(reason, str):
        raise Invalid("reason: must be a string", code="bad_reason")
    if len(reason) > MAX_REASON_CHARS:
        raise Invalid(f"reason: longer than {MAX_REASON_CHARS} characters", code="bad_reason")
    if time_spent_ms is not None and (
        isinstance(time_spent_ms, bool) or not isinstance(time_spent_ms, int) or not 0 <= time_spent_ms <= MAX_TIME_SPENT_MS
    ):
        raise Invalid(f"time_spent_ms: must be an integer between 0 and {MAX_TIME_SPENT_MS}", code="bad_time_spent_ms")


def submit(
    *, assignment_id: int, annotator, label, reason: str = "", time_spent_ms=None, now: datetime | None = None
) -> tuple[Rating, bool]:
    """Store the rating; returns (rating, created). A repeat returns the first. Ownership is
    checked before the body, so a stranger learns nothing from validation errors."""

    def store(assignment: RatingAssignment, task: RatingTask, late: bool) -> Rating:
        return Rating.objects.create(
            assignment=assignment,
            task=task,
            annotator=annotator,
            label=label,
            reason=_clean_reason(reason),
            time_spent_ms=time_spent_ms,
            accepted_after_expiry=late,
        )

    return queue.result_submit(
        RATING,
        lease_id=assignment_id,
        annotator=annotator,
        validate=lambda project: _validate(label, reason, time_spent_ms),
        store=store,
        now=now,
    )


def skip(*, assignment_id: int, annotator, now: datetime | None = None) -> RatingAssignment:
    """Give the answer back; this annotator will not be offered it again. Idempotent."""
    return queue.lease_skip(RATING, lease_id=assignment_id, annotator=annotator, now=now)


def renew(*, assignment_id: int, annotator, now: datetime | None = None) -> RatingAssignment:
    """The page's heartbeat: keep the lease while the annotator is looking at the answer."""
    return queue.lease_renew(RATING, lease_id=assignment_id, annotator=annotator, now=now)


def answer_rate(
    *,
    project: Project,
    actor,
    source: str,
    source_id: str,
    conversation: list[dict],
    answer: str,
    label,
    reason: str = "",
    model_version=None,
) -> tuple[AnswerRating, bool]:
    """Record `actor`'s thumbs on an answer seen outside the queue (the playground); returns
    (rating, created). Rating the same answer again changes the label and reason."""
    require_role(actor, project, STAFF_ROLES)
    _validate(label, reason, None)
    if source not in AnswerSource.values:
        raise Invalid(f"source must be one of {', '.join(AnswerSource.values)}", code="bad_source")
    if not conversation or conversation[-1].get("role") != "user":
        raise Invalid("conversation must end with the user turn the answer replied to", code="bad_conversation")
    rating, created = AnswerRating.objects.update_or_create(
        source=source,
        source_id=str(source_id),
        rater=actor,
        defaults={"label": label, "reason": _clean_reason(reason)},
        create_defaults={
            "project": project,
            "model_version": model_version,
            "conversation": conversation,
            "answer": answer,
            "label": label,
            "reason": _clean_reason(reason),
        },
    )
    return rating, created


def answer_labels(*, source: str, source_ids: list, rater) -> dict[str, bool]:
    """`rater`'s current thumbs on the given answers: {source_id: label} (unrated ones absent)."""
    rows = AnswerRating.objects.filter(source=source, source_id__in=[str(i) for i in source_ids], rater=rater)
    return dict(rows.values_list("source_id", "label"))


def export_rows(project: Project) -> tuple[list[dict], int]:
    """(rows, split): one row per rated answer in TRL's unpaired format with the majority label
    of its ratings, in a stable order (queued answers, then answers rated in the playground);
    `split` counts answers whose ratings were evenly split (left out: they say nothing about
    which side the answer is on)."""
    answers: list[tuple[dict, list[dict], str, list[tuple[bool, str, int]]]] = []  # (ids, prompt, answer, votes)
    ratings = Rating.objects.filter(task__project=project).select_related("task__response__prompt").order_by("task__response_id", "id")
    by_response: dict[int, list[Rating]] = {}
    for rating in ratings:
        by_response.setdefault(rating.task.response_id, []).append(rating)
    for response_id, group in by_response.items():
        response = group[0].task.response
        ids = {"source": "queue", "response_id": response_id, "prompt_id": response.prompt_id}
        answers.append((ids, response.prompt.messages(), response.text, [(r.label, r.reason, r.annotator_id) for r in group]))
    direct = AnswerRating.objects.filter(project=project).order_by("source", "source_id", "id")
    by_answer: dict[tuple[str, str], list[AnswerRating]] = {}
    for rating in direct:
        by_answer.setdefault((rating.source, rating.source_id), []).append(rating)
    for (source, source_id), group in by_answer.items():
        first = group[0]
        ids = {"source": source, "source_id": source_id, "model_version_id": first.model_version_id}
        answers.append((ids, first.conversation, first.answer, [(r.label, r.reason, r.rater_id) for r in group]))

    rows, split = [], 0
    for ids, prompt, answer, votes in answers:
        tally = Counter(label for label, _, _ in votes)
        if tally[True] == tally[False]:
            split += 1
            continue
        rows.append(
            {
                "prompt": prompt,
                "completion": [{"role": "assistant", "content": answer}],
                "label": tally[True] > tally[False],
                **ids,
                "votes_up": tally[True],
                "votes_down": tally[False],
                "ratings": [{"label": label, "reason": reason, "annotator": pseudonym(project.pk, user)} for label, reason, user in votes],
            }
        )
    return rows, split


def snapshot_create(*, project: Project, actor) -> tuple[RatingSnapshot, bool]:
    """Freeze the project's ratings into a KTO JSONL file; the same content returns the latest
    snapshot instead of a new one. Returns (snapshot, created)."""
    require_role(actor, project, STAFF_ROLES)
    rows, split = export_rows(project)
    if not rows:
        raise Invalid("there are no decided ratings to snapshot yet", code="no_ratings")
    desirable = sum(row["label"] for row in rows)
    return freeze_rows(
        model=RatingSnapshot,
        project=project,
        folder="ratings",
        rows=rows,
        actor=actor,
        example_count=len(rows),
        desirable_count=desirable,
        undesirable_count=len(rows) - desirable,
        split_count=split,
    )


def snapshot_file(snapshot: RatingSnapshot) -> Path:
    """The snapshot's JSONL after checking it still has its recorded hash, so a download or a
    KTO run never reads a changed file."""
    return verified_path(snapshot.path, snapshot.content_hash, f"rating snapshot {snapshot.number}")
