"""Every write of the annotation queue: leasing pairs, renewing leases, submitting and skipping.

Concurrency model (PostgreSQL): every path that adds a lease or a judgment to a pair first
locks that pair's row. `assignment_next` finds a candidate with `FOR UPDATE SKIP LOCKED`, so
concurrent annotators fan out over different pairs instead of queueing on one, and then counts
the pair's open slots again in a new statement: under READ COMMITTED that statement sees every
lease committed before the lock was granted, so a slot is never handed out twice. On SQLite
(the laptop default) transactions are IMMEDIATE, which serialises writers instead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from feedback_site.annotation.models import (
    Assignment,
    AssignmentStatus,
    DisplayChoice,
    Judgment,
    Pair,
    Preference,
    Strength,
)
from feedback_site.core.errors import Conflict, Invalid, NotFound
from feedback_site.core.permissions import ALL_ROLES, require_role
from feedback_site.projects.models import GuidelineVersion, Project

# How many locked-but-full candidates to step over before giving up for this request. Each one
# means another request filled the pair between our snapshot and our lock; more than a few in a
# row only happens when the queue is nearly empty.
_MAX_CANDIDATES = 50
_swap_random = random.SystemRandom()


def _active_leases(pair_id: int, now: datetime, exclude_assignment_id: int | None = None) -> int:
    qs = Assignment.objects.filter(pair_id=pair_id, status=AssignmentStatus.LEASED, expires_at__gt=now)
    if exclude_assignment_id is not None:
        qs = qs.exclude(pk=exclude_assignment_id)
    return qs.count()


def _open_slots(pair: Pair, now: datetime, exclude_assignment_id: int | None = None) -> int:
    return pair.overlap - pair.judgment_count - _active_leases(pair.pk, now, exclude_assignment_id)


@dataclass(frozen=True)
class LeasedAssignment:
    assignment: Assignment
    resumed: bool


def assignment_next(*, project: Project, annotator: AbstractBaseUser, now: datetime | None = None) -> LeasedAssignment | None:
    """Lease the next pair for `annotator`, or return their lease that is still open.

    Returns None when nothing is left for this annotator.
    """
    require_role(annotator, project, ALL_ROLES)
    now = now or timezone.now()
    lease = timedelta(seconds=project.lease_seconds)

    open_lease = (
        Assignment.objects.filter(
            pair__project=project, annotator=annotator, status=AssignmentStatus.LEASED, expires_at__gt=now
        )
        .order_by("id")
        .first()
    )
    if open_lease is not None:
        # A reload of the page must show the same pair, not lease a second one.
        Assignment.objects.filter(pk=open_lease.pk).update(expires_at=now + lease)
        open_lease.expires_at = now + lease
        return LeasedAssignment(open_lease, resumed=True)

    seen_by_annotator = Assignment.objects.filter(pair=OuterRef("pk"), annotator=annotator)
    # Filtering on open slots in the candidate query itself keeps a busy queue from stepping over
    # every leased pair one lock at a time; the count is re-checked once the row is locked.
    live_leases = (
        Assignment.objects.filter(pair=OuterRef("pk"), status=AssignmentStatus.LEASED, expires_at__gt=now)
        .order_by()
        .values("pair")
        .annotate(n=Count("pk"))
        .values("n")
    )
    skipped: list[int] = []
    with transaction.atomic():
        for _ in range(_MAX_CANDIDATES):
            candidate = (
                Pair.objects.filter(project=project, is_complete=False)
                .exclude(pk__in=skipped)
                .exclude(Exists(seen_by_annotator))
                .annotate(live_leases=Coalesce(Subquery(live_leases), 0))
                .filter(overlap__gt=F("judgment_count") + F("live_leases"))
                .order_by("-priority", "id")
                .select_for_update(skip_locked=True, of=("self",))
                .first()
            )
            if candidate is None:
                return None
            if _open_slots(candidate, now) <= 0:
                skipped.append(candidate.pk)
                continue
            try:
                with transaction.atomic():
                    assignment = Assignment.objects.create(
                        pair=candidate,
                        annotator=annotator,
                        swapped=_swap_random.random() < 0.5,
                        expires_at=now + lease,
                    )
            except IntegrityError:
                # Only a concurrent request of the same annotator can get here (unique pair+annotator).
                skipped.append(candidate.pk)
                continue
            return LeasedAssignment(assignment, resumed=False)
    return None


def _locked_own_assignment(assignment_id: int, annotator: AbstractBaseUser) -> Assignment:
    assignment = (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("pair", "pair__project")
        .filter(pk=assignment_id, annotator=annotator)
        .first()
    )
    if assignment is None:
        # Someone else's assignment is reported as missing, not forbidden: ids reveal nothing.
        raise NotFound("No such assignment.")
    return assignment


def assignment_renew(*, assignment_id: int, annotator: AbstractBaseUser, now: datetime | None = None) -> Assignment:
    """Heartbeat from an open page: push the lease expiry forward."""
    now = now or timezone.now()
    with transaction.atomic():
        assignment = _locked_own_assignment(assignment_id, annotator)
        if assignment.status != AssignmentStatus.LEASED:
            raise Conflict(f"This assignment is already {assignment.status}; ask for the next pair.", code="not_leased")
        if assignment.expires_at <= now:
            pair = Pair.objects.select_for_update().get(pk=assignment.pair_id)
            if _open_slots(pair, now, exclude_assignment_id=assignment.pk) <= 0:
                raise Conflict(
                    "Your lease expired and the pair went to other annotators; ask for the next pair.",
                    code="lease_lost",
                )
        assignment.expires_at = now + timedelta(seconds=assignment.pair.project.lease_seconds)
        assignment.save(update_fields=["expires_at"])
        return assignment


_CHOICE_TO_PREFERENCE = {
    (DisplayChoice.LEFT, False): Preference.A,
    (DisplayChoice.RIGHT, False): Preference.B,
    (DisplayChoice.LEFT, True): Preference.B,
    (DisplayChoice.RIGHT, True): Preference.A,
}


def to_preference(choice: str, swapped: bool) -> str:
    if choice in (DisplayChoice.TIE, DisplayChoice.BOTH_BAD):
        return choice
    return _CHOICE_TO_PREFERENCE[(DisplayChoice(choice), swapped)]


def _validate_submission(project: Project, choice: str, strength: str, criteria: dict, rationale: str, time_spent_ms):
    if choice not in DisplayChoice.values:
        raise Invalid(f"choice must be one of {', '.join(DisplayChoice.values)}; got {choice!r}", code="bad_choice")
    if strength and strength not in Strength.values:
        raise Invalid(f"strength must be one of {', '.join(Strength.values)} or empty; got {strength!r}", code="bad_strength")
    if strength and choice not in (DisplayChoice.LEFT, DisplayChoice.RIGHT):
        raise Invalid("strength only applies when one side is chosen", code="bad_strength")
    if not isinstance(criteria, dict):
        raise Invalid("criteria must be an object mapping criterion name to left/right/tie", code="bad_criteria")
    allowed = set(project.criteria or [])
    for name, vote in criteria.items():
        if name not in allowed:
            raise Invalid(f"unknown criterion {name!r}; this project has {sorted(allowed) or 'none'}", code="bad_criteria")
        if vote not in ("left", "right", "tie"):
            raise Invalid(f"criterion {name!r} must be left, right or tie; got {vote!r}", code="bad_criteria")
    if not isinstance(rationale, str) or len(rationale) > 10_000:
        raise Invalid("rationale must be text of at most 10,000 characters", code="bad_rationale")
    if time_spent_ms is not None and (not isinstance(time_spent_ms, int) or isinstance(time_spent_ms, bool) or not 0 <= time_spent_ms <= 86_400_000):
        raise Invalid("time_spent_ms must be an integer between 0 and 86400000", code="bad_time")


def judgment_submit(
    *,
    assignment_id: int,
    annotator: AbstractBaseUser,
    choice: str,
    strength: str = "",
    criteria: dict | None = None,
    rationale: str = "",
    time_spent_ms: int | None = None,
    now: datetime | None = None,
) -> tuple[Judgment, bool]:
    """Store the annotator's judgment. Returns (judgment, created).

    Idempotent: a repeated submit of the same assignment returns the stored judgment with
    created=False and changes nothing. A submit after the lease expired is kept when the pair
    still needs a judgment, otherwise refused with Conflict.
    """
    now = now or timezone.now()
    criteria = criteria or {}
    with transaction.atomic():
        assignment = _locked_own_assignment(assignment_id, annotator)
        existing = Judgment.objects.filter(assignment=assignment).first()
        if existing is not None:
            return existing, False
        project = assignment.pair.project
        _validate_submission(project, choice, strength, criteria, rationale, time_spent_ms)
        if assignment.status == AssignmentStatus.SKIPPED:
            raise Conflict("You skipped this pair; it cannot be judged any more.", code="skipped")
        pair = Pair.objects.select_for_update().get(pk=assignment.pair_id)
        late = assignment.expires_at <= now
        if late and _open_slots(pair, now, exclude_assignment_id=assignment.pk) <= 0:
            raise Conflict(
                "Your lease on this pair expired and it already has the judgments it needs; "
                "your answer was not stored. Ask for the next pair.",
                code="lease_expired",
            )
        guideline = GuidelineVersion.objects.filter(project=project).order_by("-number").first()
        judgment = Judgment.objects.create(
            assignment=assignment,
            pair=pair,
            annotator=annotator,
            choice=choice,
            preferred=to_preference(choice, assignment.swapped),
            swapped=assignment.swapped,
            strength=strength,
            criteria={name: to_preference(vote, assignment.swapped) for name, vote in criteria.items()},
            rationale=rationale,
            time_spent_ms=time_spent_ms,
            guideline_version=guideline,
            accepted_after_expiry=late,
        )
        assignment.status = AssignmentStatus.SUBMITTED
        assignment.finished_at = now
        assignment.save(update_fields=["status", "finished_at"])
        pair.judgment_count += 1
        pair.is_complete = pair.judgment_count >= pair.overlap
        pair.save(update_fields=["judgment_count", "is_complete"])
        return judgment, True


def assignment_skip(*, assignment_id: int, annotator: AbstractBaseUser, now: datetime | None = None) -> Assignment:
    """Give the pair back; this annotator will not be offered it again. Idempotent."""
    now = now or timezone.now()
    with transaction.atomic():
        assignment = _locked_own_assignment(assignment_id, annotator)
        if assignment.status == AssignmentStatus.SUBMITTED:
            raise Conflict("This pair was already judged; a judgment cannot be skipped.", code="already_judged")
        if assignment.status == AssignmentStatus.LEASED:
            assignment.status = AssignmentStatus.SKIPPED
            assignment.finished_at = now
            assignment.save(update_fields=["status", "finished_at"])
        return assignment
