"""The lease queue: one specification for every task kind, and its ORM implementation.

A *task* is what one annotator works on once (a pair to compare, a prompt to answer ...). Its
*kind* (`TaskKind`) says where the kind's tasks, leases and results are stored; the queue knows
nothing else about it. Adding a kind (a ranking, a conversation turn, a rating, an AI judge's
label) means writing its models and one `TaskKind`, not another queue. The guarantees, the same
for every kind and every implementation (tests/annotation/test_queue_spec.py checks them all):

- exactly N results per task from N distinct annotators (`overlap`; an annotator gets a task at
  most once, unique (task, annotator) lease), never a lease beyond the open slots
  (`need - results - live leases`), also under concurrency;
- short leases (the project's `lease_seconds`), renewed by a heartbeat or by asking for the next
  task again (an open lease is served again, not a second one); an expired lease stops counting;
- idempotent submit (a repeat answers with the stored result); a late submit is kept while the
  task still needs it, otherwise refused (409 `lease_expired`); a skipped task never returns;
- priorities (higher first, then oldest); gold tasks (kinds with `has_gold`) mixed in at the
  project's `gold_rate` outside the overlap, in an order fixed per annotator by
  md5("<task id>:<user id>"); dynamic overlap (kinds with an `agreement_field`): two results, a
  third only when they disagree; holds (a held task has overlap 0: for pairs the safety app calls
  `services.pairs_withdraw`);
  paused members get nothing (403 `paused`), and low gold accuracy pauses them.

Concurrency (PostgreSQL): every path that adds a lease or a result to a task locks the task's row
first. The candidate query filters on open slots and takes `FOR UPDATE SKIP LOCKED`, so concurrent
annotators fan out over different tasks; once the row is locked the slots are counted again in a
new statement, which under READ COMMITTED sees every lease committed before the lock was granted,
so a slot is never handed out twice. When every candidate left is locked by another request (the
end of the queue), the query is repeated without SKIP LOCKED and waits, instead of answering
"empty" while work remains. SQLite (the laptop default) serialises writers instead
(transactions are IMMEDIATE).

Two implementations: this module (the ORM, every database, every kind) and `queue_pg.py`
(PL/pgSQL functions, one statement per next and per submit, for the kinds it has functions for).
`services.py` dispatches to one of them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Case, CharField, Count, Exists, F, IntegerField, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import MD5, Cast, Coalesce, Concat
from django.utils import timezone

from feedback_site.core.audit import audit_record
from feedback_site.core.errors import Conflict, Forbidden, NotFound
from feedback_site.projects.models import Membership, Project
from feedback_site.projects.permissions import ALL_ROLES, require_role

LEASED, SUBMITTED, SKIPPED = "leased", "submitted", "skipped"

# How many locked-but-full candidates to step over before answering "empty" (both paths). Each one
# means another request filled the task between our snapshot and our lock; more than a few in a
# row only happens when the queue is nearly empty.
MAX_CANDIDATES = 50

_swap_random = random.SystemRandom()


@dataclass(frozen=True)
class TaskKind:
    """Where one kind of task keeps its rows. Field names are those of the kind's models:

    task_model    the task: `project`, `overlap`, `is_complete`, `priority`, the result counter
                  (`count_field`), and `is_gold` when `has_gold`
    lease_model   one annotator's lease on one task: `<task_field>`, `annotator`, `status`
                  (leased/submitted/skipped), `expires_at`, `finished_at`; unique (task, annotator)
    result_model  what a submit stores: `assignment` (one-to-one to the lease), `<task_field>`,
                  `annotator`
    """

    name: str
    task_model: type[models.Model]
    lease_model: type[models.Model]
    result_model: type[models.Model]
    task_field: str
    count_field: str
    noun: str  # what the annotator is told they hold: "pair", "task"
    result_noun: str  # plural: "judgments", "demonstrations"
    has_gold: bool = False
    # The result field two results must agree on under the project's dynamic overlap; None: the
    # kind always needs exactly `overlap` results.
    agreement_field: str | None = None
    # Extra fields of a new lease (e.g. a random display order).
    new_lease: Callable[[], dict] = field(default=dict)
    # Submit and skip check that the lease's owner is still a member of the project.
    recheck_membership: bool = False
    # Kinds with gold: (correct, judged) of one annotator's gold results in a project, checked
    # after each gold submit against the project's minimum; None: pairs' gold accuracy.
    gold_accuracy: Callable[[int, int], tuple[int, int]] | None = None


KINDS: dict[str, TaskKind] = {}


def register(kind: TaskKind) -> TaskKind:
    if kind.name in KINDS and KINDS[kind.name] != kind:
        raise ValueError(f"task kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind


@dataclass(frozen=True)
class Leased:
    """A lease handed out by `lease_next`; `resumed` when it is the annotator's open one. `payload`
    is what the annotator is shown when the implementation read it with the lease (else None)."""

    assignment: models.Model
    resumed: bool
    payload: dict | None = None


# ---------------------------------------------------------------------------------------------
# Rules that need no database (both implementations)
# ---------------------------------------------------------------------------------------------


class Paused(Forbidden):
    """The annotator is paused in this project (403, code `paused`); the detail says why."""

    code = "paused"


def paused_message(reason: str, noun: str = "pair") -> str:
    return f"You are paused in this project and get no new {noun}s until an admin lifts the pause. Reason: {reason}"


def gold_turn(user_id: int, given_so_far: int, rate: float) -> bool:
    """Whether the annotator's next assignment (their `given_so_far + 1`-th in the project) is a
    gold task. Gold is spread evenly at `rate` with a fixed per-annotator phase: with rate 0.1
    every 10th assignment is gold, at a position in each run of 10 that differs between
    annotators, so the share is exact over any stretch and the position predicts nothing."""
    if rate <= 0:
        return False
    if rate >= 1:
        return True
    phase = (user_id * 0.6180339887498949) % 1.0
    return math.floor((given_so_far + 1) * rate + phase) > math.floor(given_so_far * rate + phase)


def need(overlap: int, count: int, dynamic: bool) -> int:
    """Results a task needs now: under dynamic overlap, 2 until two are in."""
    if dynamic and overlap > 0 and count < 2:
        return 2
    return overlap


def after_result(*, overlap: int, count: int, dynamic: bool, agreed: Callable[[], bool]) -> tuple[int, int, bool]:
    """(count, overlap, is_complete) of a normal task after one more result. Under dynamic
    overlap the submit that brings a task to 2 sets overlap to 2 when `agreed()` (the two results
    agree: complete) or 3 (one more is needed); the third completes it, never a fourth."""
    count += 1
    if not dynamic or overlap == 0:
        return count, overlap, count >= overlap
    if count < 2:
        return count, max(overlap, count), False
    if count == 2:
        return (count, 2, True) if agreed() else (count, 3, False)
    return count, count, True


def late_refused_message(kind: TaskKind) -> str:
    return (
        f"Your lease on this {kind.noun} expired and it already has the {kind.result_noun} it needs; "
        f"your answer was not stored. Ask for the next {kind.noun}."
    )


def skipped_message(kind: TaskKind) -> str:
    return f"You skipped this {kind.noun}; it cannot be submitted any more."


# ---------------------------------------------------------------------------------------------
# The ORM implementation
# ---------------------------------------------------------------------------------------------


def _need_expression(dynamic: bool, count_field: str):
    if not dynamic:
        return F("overlap")
    return Case(When(Q(overlap__gt=0, **{f"{count_field}__lt": 2}), then=Value(2)), default=F("overlap"), output_field=IntegerField())


def _dynamic(kind: TaskKind, project: Project) -> bool:
    return bool(project.dynamic_overlap and kind.agreement_field)


def _live_leases(kind: TaskKind, task_id: int, now: datetime, exclude_lease_id: int | None = None) -> int:
    qs = kind.lease_model.objects.filter(**{f"{kind.task_field}_id": task_id}, status=LEASED, expires_at__gt=now)
    if exclude_lease_id is not None:
        qs = qs.exclude(pk=exclude_lease_id)
    return qs.count()


def open_slots(kind: TaskKind, task, now: datetime, dynamic: bool, exclude_lease_id: int | None = None) -> int:
    if kind.has_gold and task.is_gold:
        return 1  # no overlap limit on gold tasks
    count = getattr(task, kind.count_field)
    return need(task.overlap, count, dynamic) - count - _live_leases(kind, task.pk, now, exclude_lease_id)


def _check_member(project: Project, annotator: AbstractBaseUser, noun: str) -> None:
    """Member (404 otherwise; superusers act as admins) and not paused (Paused), in one query."""
    row = Membership.objects.filter(project=project, user_id=annotator.pk).values_list("paused_at", "pause_reason").first()
    if row is None or not annotator.is_active:
        require_role(annotator, project, ALL_ROLES)
        return
    paused_at, reason = row
    if paused_at is not None:
        raise Paused(paused_message(reason, noun))


def lease_next(kind: TaskKind, *, project: Project | int, annotator: AbstractBaseUser, now: datetime | None = None) -> Leased | None:
    """Lease the next task of `kind` for `annotator`, or serve their lease that is still open.

    None when nothing is left for them. NotFound for a missing project or a non-member, Paused
    for a paused member."""
    now = now or timezone.now()
    if isinstance(project, int):
        project = Project.objects.filter(pk=project).first()
        if project is None:
            raise NotFound("No such project.")
    _check_member(project, annotator, kind.noun)
    expires = now + timedelta(seconds=project.lease_seconds)
    leases = kind.lease_model.objects
    on_project = {f"{kind.task_field}__project": project}

    open_lease = leases.filter(**on_project, annotator=annotator, status=LEASED, expires_at__gt=now).order_by("id").first()
    if open_lease is not None:
        # A reload of the page must show the same task, not lease a second one.
        leases.filter(pk=open_lease.pk).update(expires_at=expires)
        open_lease.expires_at = expires
        return Leased(open_lease, resumed=True)

    tasks = kind.task_model.objects.filter(project=project)
    seen = leases.filter(**{kind.task_field: OuterRef("pk")}, annotator=annotator)
    if kind.has_gold and project.gold_rate > 0:
        given = leases.filter(**on_project, annotator=annotator).count()
        if gold_turn(annotator.pk, given, project.gold_rate):
            # No overlap limit and no lock: the unique (task, annotator) lease is all it needs.
            # The order is the fast path's: md5("<id>:<user>"), fixed per annotator.
            order = MD5(Concat(Cast("pk", CharField()), Value(f":{annotator.pk}"), output_field=CharField()))
            for gold in tasks.filter(is_gold=True).exclude(Exists(seen)).order_by(order)[:20]:
                try:
                    with transaction.atomic():
                        lease = leases.create(**{kind.task_field: gold}, annotator=annotator, expires_at=expires, **kind.new_lease())
                except IntegrityError:
                    continue  # a concurrent request of the same annotator took it
                return Leased(lease, resumed=False)
            # None left that this annotator has not seen: serve a normal task.

    dynamic = _dynamic(kind, project)
    live = (
        leases.filter(**{kind.task_field: OuterRef("pk")}, status=LEASED, expires_at__gt=now)
        .order_by()
        .values(kind.task_field)
        .annotate(n=Count("pk"))
        .values("n")
    )
    normal = tasks.filter(is_complete=False, **({"is_gold": False} if kind.has_gold else {}))
    # Filtering on open slots in the candidate query itself keeps a busy queue from stepping over
    # every leased task one lock at a time; the count is re-checked once the row is locked.
    candidates = (
        normal.exclude(Exists(seen))
        .annotate(live_leases=Coalesce(Subquery(live), 0), need=_need_expression(dynamic, kind.count_field))
        .filter(need__gt=F(kind.count_field) + F("live_leases"))
        .order_by("-priority", "id")
    )
    can_skip_locked = connection.features.has_select_for_update_skip_locked
    skipped: list[int] = []
    for _ in range(MAX_CANDIDATES):
        # One transaction per candidate: a candidate found full is unlocked before the next one is
        # tried, so a request that waits (below) holds no row lock another waiter could need.
        candidate = None
        try:
            with transaction.atomic():
                pending = candidates.exclude(pk__in=skipped) if skipped else candidates
                candidate = pending.select_for_update(skip_locked=True, of=("self",)).first()
                if candidate is None and can_skip_locked:
                    # Every candidate left is locked by another request: wait for it (see above).
                    candidate = pending.select_for_update(of=("self",)).first()
                if candidate is None:
                    return None
                if open_slots(kind, candidate, now, dynamic) <= 0:
                    skipped.append(candidate.pk)  # filled between our snapshot and our lock
                    continue
                lease = leases.create(**{kind.task_field: candidate}, annotator=annotator, expires_at=expires, **kind.new_lease())
                return Leased(lease, resumed=False)
        except IntegrityError:
            # Only a concurrent request of the same annotator gets here (unique task+annotator).
            skipped.append(candidate.pk)
    return None


def _locked_own_lease(kind: TaskKind, lease_id: int, annotator: AbstractBaseUser):
    lease = (
        kind.lease_model.objects.select_for_update(of=("self",))
        .select_related(kind.task_field, f"{kind.task_field}__project")
        .filter(pk=lease_id, annotator=annotator)
        .first()
    )
    if lease is None:
        # Someone else's lease is reported as missing, not forbidden: ids reveal nothing.
        raise NotFound("No such assignment.")
    if kind.recheck_membership:
        require_role(annotator, getattr(lease, kind.task_field).project_id, ALL_ROLES)
    return lease


def lease_renew(kind: TaskKind, *, lease_id: int, annotator: AbstractBaseUser, now: datetime | None = None):
    """Heartbeat from an open page: push the lease's expiry forward. An expired lease is renewed
    while its task still has a free slot, else Conflict `lease_lost`."""
    now = now or timezone.now()
    with transaction.atomic():
        lease = _locked_own_lease(kind, lease_id, annotator)
        if lease.status != LEASED:
            raise Conflict(f"This assignment is already {lease.status}; ask for the next {kind.noun}.", code="not_leased")
        task = getattr(lease, kind.task_field)
        project = task.project
        if lease.expires_at <= now:
            task = kind.task_model.objects.select_for_update().get(pk=task.pk)
            if open_slots(kind, task, now, _dynamic(kind, project), exclude_lease_id=lease.pk) <= 0:
                raise Conflict(
                    f"Your lease expired and the {kind.noun} went to other annotators; ask for the next {kind.noun}.",
                    code="lease_lost",
                )
        lease.expires_at = now + timedelta(seconds=project.lease_seconds)
        lease.save(update_fields=["expires_at"])
        return lease


def lease_skip(kind: TaskKind, *, lease_id: int, annotator: AbstractBaseUser, now: datetime | None = None):
    """Give the task back; this annotator will not be offered it again. Idempotent."""
    now = now or timezone.now()
    with transaction.atomic():
        lease = _locked_own_lease(kind, lease_id, annotator)
        if lease.status == SUBMITTED:
            raise Conflict(f"This {kind.noun} was already submitted; it cannot be skipped.", code="already_judged")
        if lease.status == LEASED:
            lease.status, lease.finished_at = SKIPPED, now
            lease.save(update_fields=["status", "finished_at"])
        return lease


def result_submit(
    kind: TaskKind,
    *,
    lease_id: int,
    annotator: AbstractBaseUser,
    validate: Callable[[Project], None],
    store: Callable[[models.Model, models.Model, bool], models.Model],
    now: datetime | None = None,
):
    """Store a result for the annotator's lease. Returns (result, created).

    `validate(project)` checks the kind's fields (raises Invalid); it runs after ownership and the
    repeat check, so a stranger learns nothing from validation errors and a repeat is never
    refused. `store(lease, task, late)` creates and returns the result row. Idempotent: a repeat
    returns the stored result with created False. A submit after the lease expired is kept when
    the task still needs a result, otherwise Conflict `lease_expired`."""
    now = now or timezone.now()
    with transaction.atomic():
        lease = _locked_own_lease(kind, lease_id, annotator)
        existing = kind.result_model.objects.filter(assignment=lease).first()
        if existing is not None:
            return existing, False
        project = getattr(lease, kind.task_field).project
        validate(project)
        if lease.status == SKIPPED:
            raise Conflict(skipped_message(kind), code="skipped")
        task = kind.task_model.objects.select_for_update().get(pk=getattr(lease, f"{kind.task_field}_id"))
        dynamic = _dynamic(kind, project)
        late = lease.expires_at <= now
        if late and open_slots(kind, task, now, dynamic, exclude_lease_id=lease.pk) <= 0:
            raise Conflict(late_refused_message(kind), code="lease_expired")
        result = store(lease, task, late)
        lease.status, lease.finished_at = SUBMITTED, now
        lease.save(update_fields=["status", "finished_at"])
        if kind.has_gold and task.is_gold:
            check_gold_pause(project.pk, annotator.pk, project.gold_min_judged, project.gold_min_accuracy, accuracy=kind.gold_accuracy)
            return result, True

        def agreed() -> bool:
            values = (
                kind.result_model.objects.filter(**{kind.task_field: task}).order_by("id").values_list(kind.agreement_field, flat=True)[:2]
            )
            return len(set(values)) == 1

        count, task.overlap, task.is_complete = after_result(
            overlap=task.overlap, count=getattr(task, kind.count_field), dynamic=dynamic, agreed=agreed
        )
        setattr(task, kind.count_field, count)
        task.save(update_fields=[kind.count_field, "overlap", "is_complete"])
        return result, True


# ---------------------------------------------------------------------------------------------
# Pauses
# ---------------------------------------------------------------------------------------------


def check_gold_pause(
    project_id: int, annotator_id: int, min_judged: int, min_accuracy: float, accuracy: Callable[[int, int], tuple[int, int]] | None = None
) -> None:
    """After a gold result, in its transaction: pause the annotator when their gold accuracy
    (`accuracy(project_id, annotator_id)`, by default on gold pairs) is below the project's
    minimum after at least `min_judged` gold tasks."""
    if not min_accuracy or min_accuracy <= 0:
        return
    if accuracy is None:
        from feedback_site.annotation.gold import gold_accuracy_of as accuracy

    correct, judged = accuracy(project_id, annotator_id)
    if judged < max(min_judged, 1) or correct / judged >= min_accuracy:
        return
    reason = (
        f"gold accuracy {correct}/{judged} = {correct / judged:.0%} is below the project's minimum of "
        f"{min_accuracy:.0%} (checked after at least {min_judged} gold pairs)"
    )
    pause_member(project_id=project_id, user_id=annotator_id, reason=reason, actor=None, automatic=True)


def pause_member(*, project_id: int, user_id: int, reason: str, actor, automatic: bool) -> Membership:
    """The pause write (no permission check: `services.membership_pause` is the public service).
    Already paused: unchanged."""
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
            actor=actor,
            action="membership.pause",
            target=membership,
            project=membership.project,
            details={"user_id": user_id, "reason": membership.pause_reason, "automatic": automatic},
        )
        return membership


__all__ = [
    "KINDS",
    "LEASED",
    "MAX_CANDIDATES",
    "SKIPPED",
    "SUBMITTED",
    "Leased",
    "Paused",
    "TaskKind",
    "after_result",
    "check_gold_pause",
    "gold_turn",
    "lease_next",
    "lease_renew",
    "lease_skip",
    "need",
    "open_slots",
    "pause_member",
    "paused_message",
    "register",
    "result_submit",
]
