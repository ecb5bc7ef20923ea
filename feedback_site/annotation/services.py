"""Every write of the annotation queue for pairs: leasing, renewing, submitting and skipping,
gold pairs, pausing annotators, and the holds and warnings other apps put on pairs and responses
(the safety screen, which sits above this app, writes them through these functions).

The queue itself (its guarantees, for every task kind) is `queue.py`: the specification and the
ORM implementation. `queue_pg.py` implements the two hot calls for pairs as PostgreSQL functions
(one statement each). The services here are thin dispatchers: the functions on PostgreSQL, the
ORM elsewhere (and on PostgreSQL when `USE_SQL_FAST_PATH` is False; the scenario suite runs both).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from feedback_site.annotation import queue, queue_pg
from feedback_site.annotation.models import Assignment, Judgment, Pair, Preference, Response
from feedback_site.annotation.pairs import PAIR, to_preference, validate_judgment
from feedback_site.annotation.queue import Leased, Paused
from feedback_site.core.audit import audit_record
from feedback_site.core.errors import Invalid, NotFound
from feedback_site.projects.models import GuidelineVersion, Membership, Project, Role
from feedback_site.projects.permissions import STAFF_ROLES, require_role

# The PostgreSQL functions run on PostgreSQL only; tests switch them off to run the ORM
# implementation on PostgreSQL too.
USE_SQL_FAST_PATH = True

# Kept for callers of the names before the queue became one module.
LeasedAssignment = Leased
__all__ = ["Paused", "LeasedAssignment", "to_preference"]


def _fast() -> bool:
    return USE_SQL_FAST_PATH and connection.vendor == "postgresql"


def _paused_message(reason: str) -> str:
    return queue.paused_message(reason, PAIR.noun)


def assignment_next(*, project: Project | int, annotator: AbstractBaseUser, now: datetime | None = None) -> Leased | None:
    """Lease the next pair for `annotator`, or return their lease that is still open.

    Returns None when nothing is left for this annotator. Raises NotFound for a missing project
    or a non-member, Paused for a paused member.
    """
    now = now or timezone.now()
    if _fast():
        project_id = project if isinstance(project, int) else project.pk
        return queue_pg.lease_next(project_id=project_id, user=annotator, now=now)
    return queue.lease_next(PAIR, project=project, annotator=annotator, now=now)


def assignment_next_for_token(*, project_id: int, token: str, now: datetime | None = None) -> Leased | None | bool:
    """`assignment_next` for the caller owning API `token`, resolved in the queue's one statement
    (PostgreSQL functions only). Returns False when no active user has the token."""
    return queue_pg.lease_next(project_id=project_id, token=token, now=now or timezone.now())


def assignment_renew(*, assignment_id: int, annotator: AbstractBaseUser, now: datetime | None = None) -> Assignment:
    """Heartbeat from an open page: push the lease expiry forward."""
    return queue.lease_renew(PAIR, lease_id=assignment_id, annotator=annotator, now=now)


def assignment_skip(*, assignment_id: int, annotator: AbstractBaseUser, now: datetime | None = None) -> Assignment:
    """Give the pair back; this annotator will not be offered it again. Idempotent."""
    return queue.lease_skip(PAIR, lease_id=assignment_id, annotator=annotator, now=now)


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
    if _fast():
        return queue_pg.judgment_submit(
            assignment_id=assignment_id,
            annotator_id=annotator.pk,
            token=None,
            choice=choice,
            strength=strength,
            criteria=criteria,
            rationale=rationale,
            time_spent_ms=time_spent_ms,
            now=now,
        )

    def validate(project: Project) -> None:
        validate_judgment(project.criteria, choice, strength, criteria, rationale, time_spent_ms)

    def store(assignment: Assignment, pair: Pair, late: bool) -> Judgment:
        return Judgment.objects.create(
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
            guideline_version=GuidelineVersion.objects.filter(project_id=pair.project_id).order_by("-number").first(),
            accepted_after_expiry=late,
        )

    return queue.result_submit(PAIR, lease_id=assignment_id, annotator=annotator, validate=validate, store=store, now=now)


def judgment_submit_for_token(*, assignment_id: int, token: str, now: datetime | None = None, **fields) -> tuple[Judgment, bool] | bool:
    """`judgment_submit` for the caller owning API `token`, resolved in the same statement
    (PostgreSQL functions only). Returns False when no active user has the token."""
    fields.setdefault("criteria", {})
    return queue_pg.judgment_submit(assignment_id=assignment_id, annotator_id=None, token=token, now=now or timezone.now(), **fields)


# ---------------------------------------------------------------------------------------------
# Gold pairs and pausing
# ---------------------------------------------------------------------------------------------


def membership_pause(*, project: Project | int, user, reason: str, actor=None, automatic: bool = False) -> Membership:
    """Pause a member: they get no new pairs (next answers 403 `paused` with the reason). Admins
    may pause by hand (`actor`); the gold check pauses with actor None. Already paused: unchanged."""
    project_id = project if isinstance(project, int) else project.pk
    user_id = user if isinstance(user, int) else user.pk
    if actor is not None:
        require_role(actor, project_id, {Role.ADMIN})
    if not reason or not reason.strip():
        raise Invalid("a pause needs a reason", code="bad_reason")
    return queue.pause_member(project_id=project_id, user_id=user_id, reason=reason, actor=actor, automatic=automatic)


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
            actor=actor,
            action="membership.unpause",
            target=membership,
            project=membership.project,
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
            actor=actor,
            action="pair.gold" if gold else "pair.ungold",
            target=pair,
            project=pair.project,
            details={"gold_label": pair.gold_label},
        )
        return pair


# ---------------------------------------------------------------------------------------------
# Holds and warnings (written by the safety screen)
# ---------------------------------------------------------------------------------------------


def pairs_withdraw(pair_ids: Iterable[int]) -> None:
    """Take pairs out of the queue (a hold): overlap 0 means "not queued", so neither the ORM
    queue nor `annotation_next` serves them. A pair already judged keeps its judgments and is
    marked complete instead (the judgment_count <= overlap constraint holds either way).
    The caller keeps what it needs to put them back (`pair_requeue`)."""
    ids = list(pair_ids)
    if not ids:
        return
    Pair.objects.filter(pk__in=ids, judgment_count=0).update(overlap=0)
    Pair.objects.filter(pk__in=ids, judgment_count__gt=0).update(is_complete=True)


def pair_requeue(pair: Pair, overlap: int) -> None:
    """Put a withdrawn pair back in the queue with `overlap` (never below the judgments it has)."""
    overlap = max(overlap, pair.judgment_count)
    Pair.objects.filter(pk=pair.pk).update(overlap=overlap, is_complete=pair.judgment_count >= overlap)


def responses_warn(warnings: Mapping[int, str]) -> None:
    """Show responses behind a warning: response id -> the reason annotators read before they
    click to reveal the response (`Response.warning`, the payload's `safety_flag`)."""
    by_warning: dict[str, list[int]] = {}
    for response_id, warning in warnings.items():
        if not warning:
            raise Invalid("a warning needs its reason", code="bad_warning")
        by_warning.setdefault(warning, []).append(response_id)
    for warning, ids in by_warning.items():
        Response.objects.filter(pk__in=ids).update(warning=warning)
