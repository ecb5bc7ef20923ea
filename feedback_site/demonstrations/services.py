"""Every write of demonstrations: queue tasks, lease the next one, submit, skip, snapshot.

A demonstration task is a task kind (`DEMONSTRATION`) of the one lease queue
(`feedback_site.annotation.queue`), with all its guarantees: `overlap` distinct writers, short
renewable leases, never over-assigned, idempotent submit, late submit kept or refused, priorities,
pauses. Demonstrations have no gold and a fixed overlap.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from django.conf import settings

from feedback_site.annotation import queue
from feedback_site.annotation.models import Prompt, Response, Split
from feedback_site.annotation.selectors import shown_to_people
from feedback_site.core.errors import Invalid
from feedback_site.core.frozen import freeze_rows, verified_path
from feedback_site.demonstrations.models import (
    DemoMode,
    Demonstration,
    DemonstrationAssignment,
    DemonstrationSnapshot,
    DemonstrationTask,
)
from feedback_site.projects.models import Project
from feedback_site.projects.permissions import STAFF_ROLES, require_role

MAX_TEXT_CHARS = 20_000

DEMONSTRATION = queue.register(
    queue.TaskKind(
        name="demonstration",
        task_model=DemonstrationTask,
        lease_model=DemonstrationAssignment,
        result_model=Demonstration,
        task_field="task",
        count_field="submitted_count",
        noun="task",
        result_noun="demonstrations",
        # A removed member's lease is dead (as before demonstrations joined the queue).
        recheck_membership=True,
    )
)


def tasks_create(*, project: Project, actor, mode: str, prompt_ids: list[int] | None = None, overlap: int | None = None) -> int:
    """Queue demonstration tasks for training prompts (all of them by default); returns how many
    were added. Idempotent: a prompt already queued in this mode is skipped. Mode "correct"
    shows the prompt's earliest response that the safety screen does not hide; prompts without
    one are skipped."""
    require_role(actor, project, STAFF_ROLES)
    if mode not in DemoMode.values:
        raise Invalid(f"mode must be one of {', '.join(DemoMode.values)}", code="bad_mode")
    overlap = project.overlap if overlap is None else overlap
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 1 <= overlap <= 20:
        raise Invalid("overlap must be an integer between 1 and 20", code="bad_overlap")
    prompts = Prompt.objects.filter(project=project, split=Split.TRAIN)
    if prompt_ids is not None:
        if not isinstance(prompt_ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in prompt_ids):
            raise Invalid("prompt_ids must be a list of prompt ids", code="bad_prompt_ids")
        prompts = Prompt.objects.filter(project=project, pk__in=prompt_ids)
        missing = set(prompt_ids) - set(prompts.values_list("pk", flat=True))
        if missing:
            raise Invalid(f"prompt(s) {sorted(missing)[:5]} are not prompts of this project", code="bad_prompt_ids")
    prompts = prompts.exclude(demonstration_tasks__mode=mode).order_by("id")
    tasks = []
    for prompt in prompts:
        response = None
        if mode == DemoMode.CORRECT:
            response = shown_to_people(Response.objects.filter(prompt=prompt)).order_by("id").first()
            if response is None:
                continue
        tasks.append(DemonstrationTask(project=project, prompt=prompt, response=response, mode=mode, overlap=overlap))
    DemonstrationTask.objects.bulk_create(tasks, ignore_conflicts=True)
    return len(tasks)


def payload(assignment: DemonstrationAssignment) -> dict:
    task = assignment.task
    prompt = task.prompt
    return {
        "assignment_id": assignment.pk,
        "mode": task.mode,
        "prompt": {"text": prompt.text, "system_prompt": prompt.system_prompt, "history": prompt.history},
        "response": {"text": task.response.text} if task.response_id else None,
        "expires_at": assignment.expires_at.isoformat(),
        "lease_seconds": task.project.lease_seconds,
    }


def next_task(*, project: Project, annotator, now: datetime | None = None) -> DemonstrationAssignment | None:
    """The annotator's open lease (renewed), or a new lease on the next task; None when done."""
    leased = queue.lease_next(DEMONSTRATION, project=project, annotator=annotator, now=now)
    return None if leased is None else leased.assignment


def _validate(text, time_spent_ms) -> None:
    if not isinstance(text, str) or not text.strip():
        raise Invalid("text must be a non-empty response", code="bad_text")
    if len(text) > MAX_TEXT_CHARS:
        raise Invalid(f"text is longer than {MAX_TEXT_CHARS} characters", code="bad_text")
    if time_spent_ms is not None and (
        isinstance(time_spent_ms, bool) or not isinstance(time_spent_ms, int) or not 0 <= time_spent_ms <= 86_400_000
    ):
        raise Invalid("time_spent_ms must be an integer between 0 and 86400000", code="bad_time_spent_ms")


def submit(*, assignment_id: int, annotator, text: str, time_spent_ms=None, now: datetime | None = None) -> tuple[Demonstration, bool]:
    """Store the demonstration; returns (demonstration, created). A repeat returns the first.
    Ownership is checked before the body, so a stranger learns nothing from validation errors."""

    def store(assignment: DemonstrationAssignment, task: DemonstrationTask, late: bool) -> Demonstration:
        return Demonstration.objects.create(
            assignment=assignment,
            task=task,
            annotator=annotator,
            text=text.replace("\x00", "\ufffd"),
            time_spent_ms=time_spent_ms,
            accepted_after_expiry=late,
        )

    return queue.result_submit(
        DEMONSTRATION,
        lease_id=assignment_id,
        annotator=annotator,
        validate=lambda project: _validate(text, time_spent_ms),
        store=store,
        now=now,
    )


def skip(*, assignment_id: int, annotator, now: datetime | None = None) -> DemonstrationAssignment:
    """Give the task back; this annotator will not be offered it again. Idempotent."""
    return queue.lease_skip(DEMONSTRATION, lease_id=assignment_id, annotator=annotator, now=now)


def export_rows(project: Project) -> list[dict]:
    """Every demonstration of the project in TRL's conversational SFT format, in a stable order."""
    rows = []
    demos = Demonstration.objects.filter(task__project=project).select_related("task", "task__prompt").order_by("id")
    for demo in demos:
        messages = demo.task.prompt.messages() + [{"role": "assistant", "content": demo.text}]
        annotator = hashlib.sha256(f"{settings.SECRET_KEY}:{demo.annotator_id}".encode()).hexdigest()[:12]
        rows.append(
            {
                "messages": messages,
                "demonstration_id": demo.pk,
                "prompt_id": demo.task.prompt_id,
                "mode": demo.task.mode,
                "annotator": annotator,
            }
        )
    return rows


def snapshot_create(*, project: Project, actor) -> tuple[DemonstrationSnapshot, bool]:
    """Freeze the project's demonstrations into a JSONL file; the same content returns the latest
    snapshot instead of a new one. Returns (snapshot, created)."""
    require_role(actor, project, STAFF_ROLES)
    rows = export_rows(project)
    if not rows:
        raise Invalid("there are no demonstrations to snapshot yet", code="no_demonstrations")
    return freeze_rows(
        model=DemonstrationSnapshot, project=project, folder="demonstrations", rows=rows, actor=actor, demonstration_count=len(rows)
    )


def snapshot_file(snapshot: DemonstrationSnapshot) -> Path:
    """The snapshot's JSONL after checking it still has its recorded hash (the file's sha256 is
    the snapshot's content hash), so a download or an SFT run never reads a changed file."""
    return verified_path(snapshot.path, snapshot.content_hash, f"demonstration snapshot {snapshot.number}")
