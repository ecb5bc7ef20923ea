"""Every write of demonstrations: queue tasks, lease the next one, submit, skip, snapshot.

The queue follows the comparison queue's rules (feedback_site.annotation.services): a task is
served while `overlap > submitted + live leases`, an annotator gets a task at most once (unique
lease), an open lease is resumed instead of a second one being handed out, leases expire after
the project's lease seconds, paused annotators get nothing, and submit is idempotent. Candidates
are locked with SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL, so concurrent requests never
over-serve a task.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from feedback_site.annotation.models import Prompt, Response, Split
from feedback_site.core.errors import Conflict, Forbidden, Invalid, NotFound
from feedback_site.core.hashing import file_sha256
from feedback_site.core.permissions import ALL_ROLES, STAFF_ROLES, require_role
from feedback_site.demonstrations.models import (
    DemoAssignmentStatus,
    DemoMode,
    Demonstration,
    DemonstrationAssignment,
    DemonstrationSnapshot,
    DemonstrationTask,
)
from feedback_site.projects.models import Membership, Project

MAX_TEXT_CHARS = 20_000
_MAX_CANDIDATES = 50


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
            response = (
                Response.objects.filter(prompt=prompt)
                .exclude(safety_screen__verdict="flagged", safety_screen__action__in=["hide", "review"])
                .order_by("id").first()
            )
            if response is None:
                continue
        tasks.append(DemonstrationTask(project=project, prompt=prompt, response=response, mode=mode, overlap=overlap))
    DemonstrationTask.objects.bulk_create(tasks, ignore_conflicts=True)
    return len(tasks)


def _live_leases(task_id: int, now: datetime) -> int:
    return DemonstrationAssignment.objects.filter(task_id=task_id, status=DemoAssignmentStatus.LEASED, expires_at__gt=now).count()


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
    require_role(annotator, project, ALL_ROLES)
    paused = Membership.objects.filter(project=project, user_id=annotator.pk, paused_at__isnull=False).values_list("pause_reason", flat=True).first()
    if paused is not None:
        raise Forbidden(f"You are paused in this project. Reason: {paused}", code="paused")
    now = now or timezone.now()
    expires = now + timedelta(seconds=project.lease_seconds)
    with transaction.atomic():
        open_lease = (
            DemonstrationAssignment.objects.select_for_update()
            .filter(task__project=project, annotator=annotator, status=DemoAssignmentStatus.LEASED, expires_at__gt=now)
            .order_by("id").first()
        )
        if open_lease is not None:
            open_lease.expires_at = expires
            open_lease.save(update_fields=["expires_at"])
            return open_lease
    skipped: list[int] = []
    for _ in range(_MAX_CANDIDATES):
        with transaction.atomic():
            live = Count("assignments", filter=Q(assignments__status=DemoAssignmentStatus.LEASED, assignments__expires_at__gt=now))
            candidate_id = (
                DemonstrationTask.objects.filter(project=project, is_complete=False, overlap__gt=0)
                .exclude(pk__in=skipped).exclude(assignments__annotator=annotator)
                .annotate(live=live).filter(overlap__gt=F("submitted_count") + F("live"))
                .order_by("-priority", "id").values_list("pk", flat=True).first()
            )
            if candidate_id is None:
                return None
            task = DemonstrationTask.objects.select_for_update(skip_locked=True).filter(pk=candidate_id).first()
            if task is None or task.overlap - task.submitted_count - _live_leases(task.pk, now) <= 0:
                skipped.append(candidate_id)
                continue
            try:
                with transaction.atomic():
                    return DemonstrationAssignment.objects.create(task=task, annotator=annotator, expires_at=expires)
            except IntegrityError:
                skipped.append(candidate_id)
    return None


def _own_assignment(assignment_id: int, annotator) -> DemonstrationAssignment:
    assignment = (
        DemonstrationAssignment.objects.select_for_update(of=("self",)).select_related("task", "task__project")
        .filter(pk=assignment_id).first()
    )
    if assignment is None or assignment.annotator_id != annotator.pk:
        raise NotFound("No such demonstration assignment.")
    require_role(annotator, assignment.task.project_id, ALL_ROLES)
    return assignment


def submit(*, assignment_id: int, annotator, text: str, time_spent_ms=None, now: datetime | None = None) -> tuple[Demonstration, bool]:
    """Store the demonstration; returns (demonstration, created). A repeat returns the first.
    Ownership is checked before the body, so a stranger learns nothing from validation errors."""
    now = now or timezone.now()
    with transaction.atomic():
        assignment = _own_assignment(assignment_id, annotator)
        existing = Demonstration.objects.filter(assignment=assignment).first()
        if existing is not None:
            return existing, False
        if not isinstance(text, str) or not text.strip():
            raise Invalid("text must be a non-empty response", code="bad_text")
        if len(text) > MAX_TEXT_CHARS:
            raise Invalid(f"text is longer than {MAX_TEXT_CHARS} characters", code="bad_text")
        if time_spent_ms is not None and (isinstance(time_spent_ms, bool) or not isinstance(time_spent_ms, int) or not 0 <= time_spent_ms <= 86_400_000):
            raise Invalid("time_spent_ms must be an integer between 0 and 86400000", code="bad_time_spent_ms")
        if assignment.status == DemoAssignmentStatus.SKIPPED:
            raise Conflict("You skipped this task.", code="skipped")
        task = DemonstrationTask.objects.select_for_update().get(pk=assignment.task_id)
        expired = assignment.expires_at <= now
        if expired and task.overlap - task.submitted_count - _live_leases(task.pk, now) <= 0:
            raise Conflict("Your lease expired and others have since completed this task.", code="lease_expired")
        demonstration = Demonstration.objects.create(
            assignment=assignment, task=task, annotator=annotator, text=text.replace("\x00", "\ufffd"),
            time_spent_ms=time_spent_ms, accepted_after_expiry=expired,
        )
        assignment.status, assignment.finished_at = DemoAssignmentStatus.SUBMITTED, now
        assignment.save(update_fields=["status", "finished_at"])
        task.submitted_count += 1
        task.is_complete = task.submitted_count >= task.overlap
        task.save(update_fields=["submitted_count", "is_complete"])
        return demonstration, True


def skip(*, assignment_id: int, annotator, now: datetime | None = None) -> DemonstrationAssignment:
    with transaction.atomic():
        assignment = _own_assignment(assignment_id, annotator)
        if assignment.status == DemoAssignmentStatus.SUBMITTED:
            raise Conflict("This task was already submitted.", code="submitted")
        if assignment.status == DemoAssignmentStatus.LEASED:
            assignment.status, assignment.finished_at = DemoAssignmentStatus.SKIPPED, now or timezone.now()
            assignment.save(update_fields=["status", "finished_at"])
        return assignment


def export_rows(project: Project) -> list[dict]:
    """Every demonstration of the project in TRL's conversational SFT format, in a stable order."""
    rows = []
    demos = Demonstration.objects.filter(task__project=project).select_related("task", "task__prompt").order_by("id")
    for demo in demos:
        messages = demo.task.prompt.messages() + [{"role": "assistant", "content": demo.text}]
        annotator = hashlib.sha256(f"{settings.SECRET_KEY}:{demo.annotator_id}".encode()).hexdigest()[:12]
        rows.append({"messages": messages, "demonstration_id": demo.pk, "prompt_id": demo.task.prompt_id,
                     "mode": demo.task.mode, "annotator": annotator})
    return rows


def snapshot_create(*, project: Project, actor) -> tuple[DemonstrationSnapshot, bool]:
    """Freeze the project's demonstrations into a JSONL file; the same content returns the latest
    snapshot instead of a new one. Returns (snapshot, created)."""
    require_role(actor, project, STAFF_ROLES)
    rows = export_rows(project)
    if not rows:
        raise Invalid("there are no demonstrations to snapshot yet", code="no_demonstrations")
    body = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows).encode()
    content_hash = hashlib.sha256(body).hexdigest()
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        latest = DemonstrationSnapshot.objects.filter(project=project).order_by("-number").first()
        if latest is not None and latest.content_hash == content_hash:
            return latest, False
        number = (latest.number + 1) if latest else 1
        relative = Path("demonstrations") / f"project-{project.pk}" / f"snapshot-{number}-{content_hash[:12]}.jsonl"
        target = Path(settings.ARTIFACTS_DIR) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(body)
        tmp.replace(target)
        snapshot = DemonstrationSnapshot.objects.create(
            project=project, number=number, content_hash=content_hash, path=str(relative),
            demonstration_count=len(rows), created_by=actor,
        )
        return snapshot, True


def snapshot_file(snapshot: DemonstrationSnapshot) -> Path:
    """The snapshot's JSONL after checking it still has its recorded hash (the file's sha256 is
    the snapshot's content hash), so a download or an SFT run never reads a changed file."""
    path = Path(settings.ARTIFACTS_DIR) / snapshot.path
    if not path.is_file() or file_sha256(path) != snapshot.content_hash:
        raise Conflict(
            f"demonstration snapshot {snapshot.number}'s file {snapshot.path} is missing or does not match its "
            "recorded hash; restore it from backup",
            code="corrupt_snapshot",
        )
    return path
