"""Every write of the annotation queue: leasing pairs, renewing leases, submitting and skipping,
gold pairs, dynamic overlap, and pausing annotators.

Concurrency model (PostgreSQL): every path that adds a lease or a judgment to a pair first
locks that pair's row. `assignment_next` finds a candidate with `FOR UPDATE SKIP LOCKED`, so
concurrent annotators fan out over different pairs instead of queueing on one, and then counts
the pair's open slots again in a new statement: under READ COMMITTED that statement sees every
lease committed before the lock was granted, so a slot is never handed out twice. On SQLite
(the laptop default) transactions are IMMEDIATE, which serialises writers instead.

Two implementations of the two hot calls (`assignment_next`, `judgment_submit`) keep the same
guarantees and answers: hand-written SQL on PostgreSQL (`queue_sql.py`, a few statements per
request) and the ORM everywhere else. `USE_SQL_FAST_PATH = False` forces the ORM path (tests run
both on PostgreSQL).

Gold pairs (`Pair.is_gold`, `gold_label`) live outside the normal queue (`is_complete` is set when
a pair is marked gold): each annotator may be given each gold pair once, at the project's
`gold_rate` (see `queue_sql.gold_turn`), their judgments never count toward the pair's overlap,
and after each gold judgment the annotator's gold accuracy may pause them (`gold.py`).

Dynamic overlap (`Project.dynamic_overlap`): a pair needs 2 judgments; the submit that brings it
to 2 sets `overlap` to 2 (the two agree on `preferred`: complete) or 3 (they disagree: one more
is needed); the third completes it. A pair never gets a fourth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Count, Exists, F, IntegerField, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from feedback_site.annotation import queue_sql
from feedback_site.annotation.models import (
    Assignment,
    AssignmentStatus,
    DisplayChoice,
    Judgment,
    Pair,
    Preference,
    Strength,
)
from feedback_site.core.audit import audit_record
from feedback_site.core.errors import Conflict, Forbidden, Invalid, NotFound
from feedback_site.core.permissions import ALL_ROLES, STAFF_ROLES, require_role
from feedback_site.projects.models import GuidelineVersion, Membership, Project, Role

_swap_random = random.SystemRandom()

# The hand-written SQL of the hot paths runs on PostgreSQL only; tests switch it off to run the
# ORM implementation on PostgreSQL too.
USE_SQL_FAST_PATH = True


def _fast() -> bool:
    return USE_SQL_FAST_PATH and connection.vendor == "postgresql"


class Paused(Forbidden):
    """The annotator is paused in this project (403, code `paused`); the detail says why."""

    code = "paused"


def _paused_message(reason: str) -> str:
    return f"You are paused in this project and get no new pairs until an admin lifts the pause. Reason: {reason}"


# ---------------------------------------------------------------------------------------------
# Shared rules
# ---------------------------------------------------------------------------------------------


def _need(overlap: int, judgment_count: int, dynamic: bool) -> int:
    """Judgments a pair needs now (see the module docstring on dynamic overlap)."""
    if dynamic and overlap > 0 and judgment_count < 2:
        return 2
    return overlap


def _need_expression(dynamic: bool):
    if not dynamic:
        return F("overlap")
    return Case(
        When(Q(overlap__gt=0, judgment_count__lt=2), then=Value(2)), default=F("overlap"), output_field=IntegerField()
    )


def _after_judgment(*, overlap: int, judgment_count: int, dynamic: bool, preferences: list[str]) -> tuple[int, int, bool]:
    """(judgment_count, overlap, is_complete) of a normal pair after one more judgment.
    `preferences` are all of the pair's preferences including the new one (only read when dynamic)."""
    count = judgment_count + 1
    if not dynamic or overlap == 0:
        return count, overlap, count >= overlap
    if count < 2:
        return count, max(overlap, count), False
    if count == 2:
        if preferences[0] == preferences[1]:
            return count, 2, True
        return count, 3, False
    return count, count, True


def _active_leases(pair_id: int, now: datetime, exclude_assignment_id: int | None = None) -> int:
    qs = Assignment.objects.filter(pair_id=pair_id, status=AssignmentStatus.LEASED, expires_at__gt=now)
    if exclude_assignment_id is not None:
        qs = qs.exclude(pk=exclude_assignment_id)
    return qs.count()


def _open_slots(pair: Pair, now: datetime, dynamic: bool, exclude_assignment_id: int | None = None) -> int:
    if pair.is_gold:
        return 1  # no overlap limit on gold pairs
    return _need(pair.overlap, pair.judgment_count, dynamic) - pair.judgment_count - _active_leases(pair.pk, now, exclude_assignment_id)


@dataclass(frozen=True)
class LeasedAssignment:
    assignment: Assignment
    resumed: bool
    # What the annotator page and API show (the SQL path reads it with the lease; the ORM path
    # leaves it None and the API asks `selectors.assignment_payload`).
    payload: dict | None = None


# ---------------------------------------------------------------------------------------------
# Next pair
# ---------------------------------------------------------------------------------------------


def assignment_next(*, project: Project | int, annotator: AbstractBaseUser, now: datetime | None = None) -> LeasedAssignment | None:
    """Lease the next pair for `annotator`, or return their lease that is still open.

    Returns None when nothing is left for this annotator. Raises NotFound for a missing project
    or a non-member, Paused for a paused member.
    """
    now = now or timezone.now()
    if _fast():
        project_id = project if isinstance(project, int) else project.pk
        # One statement, its own transaction (autocommit): see queue_sql.
        result = queue_sql.next_assignment(project_id=project_id, user=annotator, now=now)
        return _leased_from(result, annotator.pk)
    if isinstance(project, int):
        project = Project.objects.filter(pk=project).first()
        if project is None:
            raise NotFound("No such project.")
    return _assignment_next_orm(project=project, annotator=annotator, now=now)


def assignment_next_for_token(*, project_id: int, token: str, now: datetime | None = None) -> LeasedAssignment | None | bool:
    """`assignment_next` for the caller owning API `token`, resolved in the queue's first SQL
    statement (PostgreSQL only). Returns False when no active user has the token."""
    now = now or timezone.now()
    result = queue_sql.next_assignment(project_id=project_id, token=token, now=now)
    if result.status == "unauthenticated":
        return False
    return _leased_from(result, result.user_id)


def _leased_from(result, user_id: int) -> LeasedAssignment | None:
    if result.status == "no_project":
        raise NotFound("No such project.")
    if result.status == "paused":
        raise Paused(_paused_message(result.pause_reason))
    if result.status == "empty":
        return None
    assignment = Assignment(
        id=result.assignment_id, pair_id=result.pair_id, annotator_id=user_id, status=AssignmentStatus.LEASED,
        swapped=result.swapped, expires_at=result.expires_at,
    )
    assignment._state.adding = False
    assignment._state.db = "default"
    return LeasedAssignment(assignment, resumed=result.status == "resumed", payload=result.payload)


def _assignment_next_orm(*, project: Project, annotator: AbstractBaseUser, now: datetime) -> LeasedAssignment | None:
    require_role(annotator, project, ALL_ROLES)
    paused = Membership.objects.filter(project=project, user_id=annotator.pk, paused_at__isnull=False).values_list("pause_reason", flat=True).first()
    if paused is not None:
        raise Paused(_paused_message(paused))
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
    if project.gold_rate > 0:
        given = Assignment.objects.filter(pair__project=project, annotator=annotator).count()
        if queue_sql.gold_turn(annotator.pk, given, project.gold_rate):
            with transaction.atomic():
                for gold in Pair.objects.filter(project=project, is_gold=True).exclude(Exists(seen_by_annotator)).order_by("id")[:20]:
                    try:
                        with transaction.atomic():
                            assignment = Assignment.objects.create(
                                pair=gold, annotator=annotator, swapped=_swap_random.random() < 0.5, expires_at=now + lease
                            )
                    except IntegrityError:
                        continue
                    return LeasedAssignment(assignment, resumed=False)

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
        for _ in range(queue_sql.MAX_CANDIDATES):
            candidate = (
                Pair.objects.filter(project=project, is_complete=False, is_gold=False)
                .exclude(pk__in=skipped)
                .exclude(Exists(seen_by_annotator))
                .annotate(live_leases=Coalesce(Subquery(live_leases), 0), need=_need_expression(project.dynamic_overlap))
                .filter(need__gt=F("judgment_count") + F("live_leases"))
                .order_by("-priority", "id")
                .select_for_update(skip_locked=True, of=("self",))
                .first()
            )
            if candidate is None:
                return None
            if _open_slots(candidate, now, project.dynamic_overlap) <= 0:
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
            if _open_slots(pair, now, assignment.pair.project.dynamic_overlap, exclude_assignment_id=assignment.pk) <= 0:
                raise Conflict(
                    "Your lease expired and the pair went to other annotators; ask for the next pair.",
                    code="lease_lost",
                )
        assignment.expires_at = now + timedelta(seconds=assignment.pair.project.lease_seconds)
        assignment.save(update_fields=["expires_at"])
        return assignment


# ---------------------------------------------------------------------------------------------
# Judgments
# ---------------------------------------------------------------------------------------------

_CHOICE_TO_PREFERENCE = {
    (DisplayChoice.LEFT, False): Preference.A,
    (DisplayChoice.RIGHT, False): Preference.B,
    (DisplayChoice.LEFT, True): Preference.B,
    (DisplayChoice.RIGHT, True): Preference.A,
}


def to_preference(choice: str, swapped: bool) -> str:
    if choice in (DisplayChoice.TIE, DisplayChoice.BOTH_BAD):
        return str(choice)
    return str(_CHOICE_TO_PREFERENCE[(DisplayChoice(choice), swapped)])


def _validate_submission(project_criteria, choice: str, strength: str, criteria: dict, rationale: str, time_spent_ms):
    if choice not in DisplayChoice.values:
        raise Invalid(f"choice must be one of {', '.join(DisplayChoice.values)}; got {choice!r}", code="bad_choice")
    if strength and strength not in Strength.values:
        raise Invalid(f"strength must be one of {', '.join(Strength.values)} or empty; got {strength!r}", code="bad_strength")
    if strength and choice not in (DisplayChoice.LEFT, DisplayChoice.RIGHT):
        raise Invalid("strength only applies when one side is chosen", code="bad_strength")
    if not isinstance(criteria, dict):
        raise Invalid("criteria must be an object mapping criterion name to left/right/tie", code="bad_criteria")
    allowed = set(project_criteria or [])
    for name, vote in criteria.items():
        if name not in allowed:
            raise Invalid(f"unknown criterion {name!r}; this project has {sorted(allowed) or 'none'}", code="bad_criteria")
        if vote not in ("left", "right", "tie"):
            raise Invalid(f"criterion {name!r} must be left, right or tie; got {vote!r}", code="bad_criteria")
    if not isinstance(rationale, str) or len(rationale) > 10_000:
        raise Invalid("rationale must be text of at most 10,000 characters", code="bad_rationale")
    if time_spent_ms is not None and (not isinstance(time_spent_ms, int) or isinstance(time_spent_ms, bool) or not 0 <= time_spent_ms <= 86_400_000):
        raise Invalid("time_spent_ms must be an integer between 0 and 86400000", code="bad_time")


_LATE_REFUSED = (
    "Your lease on this pair expired and it already has the judgments it needs; "
    "your answer was not stored. Ask for the next pair."
)


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
    kwargs = dict(choice=choice, strength=strength, criteria=criteria, rationale=rationale, time_spent_ms=time_spent_ms, now=now)
    if _fast():
        return _judgment_submit_sql(assignment_id=assignment_id, annotator_id=annotator.pk, token=None, **kwargs)
    with transaction.atomic():
        return _judgment_submit_orm(assignment_id=assignment_id, annotator=annotator, **kwargs)


def judgment_submit_for_token(*, assignment_id: int, token: str, now: datetime | None = None, **fields) -> tuple[Judgment, bool] | bool:
    """`judgment_submit` for the caller owning API `token`, resolved in the same statement
    (PostgreSQL only). Returns False when no active user has the token."""
    now = now or timezone.now()
    fields.setdefault("criteria", {})
    return _judgment_submit_sql(assignment_id=assignment_id, annotator_id=None, token=token, now=now, **fields)


def _fields_valid(choice, strength, criteria, rationale, time_spent_ms) -> bool:
    try:
        _validate_submission(list(criteria) if isinstance(criteria, dict) else [], choice, strength, criteria, rationale, time_spent_ms)
    except Invalid:
        return False
    return True


def _judgment_submit_sql(*, assignment_id, annotator_id, token, choice, strength="", criteria, rationale="", time_spent_ms=None, now):
    """One statement, its own transaction (autocommit): see queue_sql. A gold judgment's pause
    check follows in a second transaction, once the judgment is stored."""
    valid = _fields_valid(choice, strength, criteria, rationale, time_spent_ms)
    by_swap = {swapped: to_preference(choice, swapped) for swapped in (False, True)} if valid else {}
    criteria_by_swap = (
        {swapped: {name: to_preference(vote, swapped) for name, vote in criteria.items()} for swapped in (False, True)}
        if valid else {}
    )
    result = queue_sql.submit_judgment(
        assignment_id=assignment_id, user_id=annotator_id, token=token, now=now, fields_valid=valid, choice=choice,
        strength=strength, rationale=rationale, time_spent_ms=time_spent_ms, criteria=criteria,
        preferred_by_swap=by_swap, criteria_by_swap=criteria_by_swap,
    )
    if result.status == "unauthenticated":
        return False
    if result.status == "not_found":
        raise NotFound("No such assignment.")
    if result.status == "exists":
        # (A judgment committed while we waited for the lock is seen by this new statement.)
        return Judgment.objects.get(assignment_id=assignment_id), False
    if result.status == "invalid":
        _validate_submission(result.project_criteria, choice, strength, criteria, rationale, time_spent_ms)
        raise AssertionError("annotation_submit answered invalid for a valid submission")  # pragma: no cover
    if result.status == "skipped":
        raise Conflict("You skipped this pair; it cannot be judged any more.", code="skipped")
    if result.status == "late_refused":
        raise Conflict(_LATE_REFUSED, code="lease_expired")
    judgment = Judgment(
        id=result.judgment_id, assignment_id=assignment_id, pair_id=result.pair_id, annotator_id=result.user_id,
        choice=choice, preferred=result.preferred, swapped=result.swapped, strength=strength, criteria=result.criteria,
        rationale=rationale, time_spent_ms=time_spent_ms, guideline_version_id=result.guideline_id,
        accepted_after_expiry=result.late, created_at=now,
    )
    judgment._state.adding = False
    judgment._state.db = "default"
    if result.is_gold:
        with transaction.atomic():
            _check_gold_pause(result.project_id, result.user_id, result.gold_min_judged, result.gold_min_accuracy)
    return judgment, True


def _judgment_submit_orm(*, assignment_id, annotator, choice, strength, criteria, rationale, time_spent_ms, now):
    assignment = _locked_own_assignment(assignment_id, annotator)
    existing = Judgment.objects.filter(assignment=assignment).first()
    if existing is not None:
        return existing, False
    project = assignment.pair.project
    _validate_submission(project.criteria, choice, strength, criteria, rationale, time_spent_ms)
    if assignment.status == AssignmentStatus.SKIPPED:
        raise Conflict("You skipped this pair; it cannot be judged any more.", code="skipped")
    pair = Pair.objects.select_for_update().get(pk=assignment.pair_id)
    late = assignment.expires_at <= now
    if late and _open_slots(pair, now, project.dynamic_overlap, exclude_assignment_id=assignment.pk) <= 0:
        raise Conflict(_LATE_REFUSED, code="lease_expired")
    guideline = GuidelineVersion.objects.filter(project=project).order_by("-number").first()
    preferred = to_preference(choice, assignment.swapped)
    judgment = Judgment.objects.create(
        assignment=assignment,
        pair=pair,
        annotator=annotator,
        choice=choice,
        preferred=preferred,
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
    if pair.is_gold:
        _check_gold_pause(project.pk, annotator.pk, project.gold_min_judged, project.gold_min_accuracy)
        return judgment, True
    preferences = [preferred]
    if project.dynamic_overlap and pair.judgment_count == 1:
        preferences = list(Judgment.objects.filter(pair=pair).exclude(pk=judgment.pk).order_by("id").values_list("preferred", flat=True)) + [preferred]
    pair.judgment_count, pair.overlap, pair.is_complete = _after_judgment(
        overlap=pair.overlap, judgment_count=pair.judgment_count, dynamic=project.dynamic_overlap, preferences=preferences
    )
    pair.save(update_fields=["judgment_count", "overlap", "is_complete"])
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


# ---------------------------------------------------------------------------------------------
# Gold pairs and pausing
# ---------------------------------------------------------------------------------------------


def _check_gold_pause(project_id: int, annotator_id: int, min_judged: int, min_accuracy: float) -> None:
    """After a gold judgment, in its transaction: pause the annotator when their gold accuracy is
    below the project's minimum after at least `min_judged` gold pairs."""
    if not min_accuracy or min_accuracy <= 0:
        return
    from feedback_site.annotation.gold import gold_accuracy_of

    correct, judged = gold_accuracy_of(project_id, annotator_id)
    if judged < max(min_judged, 1) or correct / judged >= min_accuracy:
        return
    reason = (
        f"gold accuracy {correct}/{judged} = {correct / judged:.0%} is below the project's minimum of "
        f"{min_accuracy:.0%} (checked after at least {min_judged} gold pairs)"
    )
    membership_pause(project=project_id, user=annotator_id, reason=reason, actor=None, automatic=True)


def membership_pause(*, project: Project | int, user, reason: str, actor=None, automatic: bool = False) -> Membership:
    """Pause a member: they get no new pairs (next answers 403 `paused` with the reason). Admins
    may pause by hand (`actor`); the gold check pauses with actor None. Already paused: unchanged."""
    project_id = project if isinstance(project, int) else project.pk
    user_id = user if isinstance(user, int) else user.pk
    if actor is not None:
        require_role(actor, project_id, {Role.ADMIN})
    if not reason or not reason.strip():
        raise Invalid("a pause needs a reason", code="bad_reason")
    with transaction.atomic():
        membership = Membership.objects.select_for_update().filter(project_id=project_id, user_id=user_id).first()
        if membership is None:
            raise NotFound("That user is not a member of this project.")
        if membership.paused_at is not None:
            return membership
        membership.paused_at = timezone.now()
        membership.pause_reason = reason.strip()
        membership.save(update_fields=["paused_at", "pause_reason"])
        audit_record(
            actor=actor, action="membership.pause", target=membership, project=membership.project,
            details={"user_id": user_id, "reason": membership.pause_reason, "automatic": automatic},
        )
        return membership


def membership_unpause(*, project: Project | int, user, actor) -> Membership:
    """Lift a pause (admins only); the annotator gets work again. Not paused: unchanged."""
    project_id = project if isinstance(project, int) else project.pk
    require_role(actor, project_id, {Role.ADMIN})
    with transaction.atomic():
        membership = Membership.objects.select_for_update().filter(project_id=project_id, user_id=user.pk).first()
        if membership is None:
            raise NotFound("That user is not a member of this project.")
        if membership.paused_at is None:
            return membership
        previous = membership.pause_reason
        membership.paused_at = None
        membership.pause_reason = ""
        membership.save(update_fields=["paused_at", "pause_reason"])
        audit_record(
            actor=actor, action="membership.unpause", target=membership, project=membership.project,
            details={"user_id": user.pk, "previous_reason": previous},
        )
        return membership


def pair_set_gold(*, pair: Pair, actor, gold: bool, gold_label: str = "") -> Pair:
    """Mark a pair as gold with its known answer (`a`, `b`, `tie` or `both_bad`), or unmark it.

    A gold pair leaves the normal queue (every annotator may be given it once, at the project's
    gold rate) and its judgments stop counting toward its overlap. Unmarked, it returns to the
    normal queue if it still needs judgments. Admins and ML staff only."""
    require_role(actor, pair.project_id, STAFF_ROLES)
    if gold and gold_label not in Preference.values:
        raise Invalid(f"gold_label must be one of {', '.join(Preference.values)}; got {gold_label!r}", code="bad_gold_label")
    with transaction.atomic():
        pair = Pair.objects.select_for_update().get(pk=pair.pk)
        if gold:
            pair.is_gold, pair.gold_label, pair.is_complete = True, gold_label, True
        else:
            pair.is_gold, pair.gold_label = False, ""
            pair.is_complete = pair.judgment_count >= pair.overlap
        pair.save(update_fields=["is_gold", "gold_label", "is_complete"])
        audit_record(
            actor=actor, action="pair.gold" if gold else "pair.ungold", target=pair, project=pair.project,
            details={"gold_label": pair.gold_label},
        )
        return pair
