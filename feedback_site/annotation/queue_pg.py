"""The queue's two hot paths (next, submit) for pairs on PostgreSQL: one function call each.

An implementation of the queue's specification (`queue.py`, which also holds the ORM
implementation that SQLite, the laptop default, and every other kind use), with the same
guarantees and the same answers: tests/annotation/test_queue_spec.py runs one scenario suite on
both. The statements live in two PL/pgSQL functions, `annotation_next` and `annotation_submit`
(migrations `annotation.0005_queue_functions` and `0006_queue_next_waits_when_locked`), so a
request is one round trip and one implicit transaction (autocommit) instead of BEGIN, a few
statements and COMMIT:

next   the caller (user, or API token resolved in the function), the project and their membership
       (role, pause); their open lease (pushed and served again); a gold pair when it is their
       turn; otherwise a candidate locked with `FOR UPDATE SKIP LOCKED` (pairs with free slots
       only) and the lease inserted by a new statement that re-counts the pair's slots (under
       READ COMMITTED it sees every lease committed before our row lock was granted); then the
       payload.
submit the caller; the assignment and its pair locked, with the project's settings, the latest
       guideline version and an existing judgment; the late-submit, skip and criteria checks;
       the judgment inserted, the assignment marked submitted and the pair's count, overlap and
       completeness updated (dynamic overlap included).

Rules that need no database stay in Python (`queue.py`, `pairs.py`) and are passed in (the display
choice mapped to a canonical preference for both sides, the checks of the fields); payload HTML
is read from the stored `text_html` columns (see `annotation.rendered`).

The calls are sent with server-side parameter binding (Django's own cursors bind on the client),
so psycopg prepares them on a connection after a few uses; PL/pgSQL caches the plans of the
statements inside. They still pass through Django's cursor wrapper (query logging, execute
wrappers, error translation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from django.db import InterfaceError, OperationalError, connection, transaction

from feedback_site.annotation.models import Assignment, AssignmentStatus, Judgment
from feedback_site.annotation.pairs import PAIR, fields_valid, to_preference, validate_judgment
from feedback_site.annotation.queue import (
    MAX_CANDIDATES,
    Leased,
    Paused,
    _swap_random,
    check_gold_pause,
    late_refused_message,
    paused_message,
    skipped_message,
)
from feedback_site.annotation.rendered import fill_rows, render_history
from feedback_site.annotation.selectors import warning_flag
from feedback_site.core.errors import Conflict, NotFound
from feedback_site.core.rendering import render_markdown

# The kinds this implementation has functions for; every other kind takes the ORM path.
KINDS = frozenset({PAIR.name})


def _cursor():
    """A Django-wrapped cursor with server-side binding (so psycopg can prepare the statement)."""
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(ServerBindingCursor(connection.connection))


def _call(sql: str, params: list) -> tuple:
    """Run one function call and return its row.

    Outside a transaction, a persistent connection is used without Django's health check (a
    `SELECT 1` round trip of its own, once per request, as much as the call itself): if the
    connection turns out to be dead (the database restarted, a backend was terminated), it is
    replaced and the call sent again. Sending it again is safe: a `next` whose lease was stored
    before the connection died finds that lease and serves it; a submit that was stored answers
    with the stored judgment."""
    if connection.in_atomic_block or connection.connection is None:
        with _cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    connection.health_check_done = True
    try:
        with _cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    except (OperationalError, InterfaceError):
        if connection.is_usable():
            raise  # a real error (e.g. a deadlock), not a dead connection
    connection.close()
    with _cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


# "busy": the function would have had to wait for a locked pair while holding the locks of pairs
# it stepped over (migration 0007); sent again, outside a transaction those locks are released.
_BUSY_RETRIES = 10

# The prompt's import id (`metadata.id`) is joined here rather than in the function, so the
# payload gains it without a second statement and without replacing the PL/pgSQL function.
_NEXT = (
    "SELECT n.*, q.metadata -> 'id' FROM annotation_next(%s::bigint, %s::integer, %s::boolean, %s::text, %s::timestamptz, "
    "%s::boolean, %s::integer) n LEFT JOIN annotation_prompt q ON q.id = n.o_q_id"
)
_SUBMIT = (
    "SELECT * FROM annotation_submit(%s::bigint, %s::integer, %s::text, %s::timestamptz, %s::boolean, %s::text, "
    "%s::text, %s::text, %s::integer, %s::jsonb, %s::text, %s::text, %s::jsonb, %s::jsonb)"
)


@dataclass(frozen=True)
class NextResult:
    """`status`: "leased", "resumed", "empty", "no_project" (missing or not a member), "paused",
    "unauthenticated" (token given, no active user has it)."""

    status: str
    payload: dict | None = None
    assignment_id: int | None = None
    pair_id: int | None = None
    swapped: bool | None = None
    expires_at: datetime | None = None
    pause_reason: str = ""
    user_id: int | None = None


def _payload(row, criteria, lease_seconds) -> dict:
    (
        aid,
        pair_id,
        swapped,
        expires_at,
        q_id,
        q_text,
        q_html,
        q_system,
        q_history,
        q_history_html,
        ra_id,
        ra_text,
        ra_html,
        rb_id,
        rb_text,
        rb_html,
        ra_warning,
        rb_warning,
        import_id,
    ) = row
    # Django reads jsonb as text (it decodes JSONField values itself); so do we.
    if isinstance(q_history, str):
        q_history = json.loads(q_history)
    if isinstance(q_history_html, str):
        q_history_html = json.loads(q_history_html)
    if isinstance(import_id, str):
        import_id = json.loads(import_id)
    q_history = q_history or []
    missing_prompts, missing_responses = [], []
    if q_html is None or q_history_html is None:
        q_html, q_history_html = render_markdown(q_text), render_history(q_history)
        missing_prompts.append((q_id, q_text, q_history))
    if ra_html is None:
        ra_html = render_markdown(ra_text)
        missing_responses.append((ra_id, ra_text))
    if rb_html is None:
        rb_html = render_markdown(rb_text)
        missing_responses.append((rb_id, rb_text))
    if missing_prompts or missing_responses:
        fill_rows(prompts=missing_prompts, responses=missing_responses)
    # The response's warning (written by the safety screen, feedback_site.safety): None unless warned.
    flag_a, flag_b = warning_flag(ra_warning), warning_flag(rb_warning)
    left, right = (
        ((rb_text, rb_html, flag_b), (ra_text, ra_html, flag_a)) if swapped else ((ra_text, ra_html, flag_a), (rb_text, rb_html, flag_b))
    )
    return {
        "assignment_id": aid,
        "pair_id": pair_id,
        "import_id": import_id,
        "shown_left": "b" if swapped else "a",
        "left_response_id": rb_id if swapped else ra_id,
        "right_response_id": ra_id if swapped else rb_id,
        "prompt": {
            "text": q_text,
            "html": q_html,
            "system_prompt": q_system,
            "history": [{"role": turn["role"], "content": turn["content"], "html": html} for turn, html in zip(q_history, q_history_html)],
        },
        "left": {"text": left[0], "html": left[1], "safety_flag": left[2]},
        "right": {"text": right[0], "html": right[1], "safety_flag": right[2]},
        "criteria": list(criteria or []),
        "expires_at": expires_at.isoformat(),
        "lease_seconds": lease_seconds,
    }


def _leased(status: str, row, criteria, lease_seconds, user_id: int) -> NextResult:
    return NextResult(
        status,
        _payload(row, criteria, lease_seconds),
        assignment_id=row[0],
        pair_id=row[1],
        swapped=row[2],
        expires_at=row[3],
        user_id=user_id,
    )


def next_assignment(*, project_id: int, now: datetime, user=None, token: str | None = None) -> NextResult:
    """Lease the next pair for `user`, or the owner of API `token` (status "unauthenticated" when
    no active user has it). One statement: call it outside a transaction to make it one round trip."""
    swap = _swap_random.random() < 0.5
    params = [project_id, None if user is None else user.pk, bool(user is not None and user.is_superuser), token, now, swap, MAX_CANDIDATES]
    for _ in range(_BUSY_RETRIES):
        row = _call(_NEXT, params)
        if row[0] != "busy":
            break
    status, user_id, pause_reason, lease_seconds, criteria = row[:5]
    if status == "busy":
        status = "empty"  # (never seen: each retry is a new transaction that skips the full pairs)
    if status in ("unauthenticated", "no_project", "empty"):
        return NextResult(status, user_id=user_id)
    if status == "paused":
        return NextResult(status, pause_reason=pause_reason, user_id=user_id)
    # Django reads jsonb as text (it decodes JSONField values itself); so do we.
    if isinstance(criteria, str):
        criteria = json.loads(criteria)
    return _leased(status, row[5:], criteria, lease_seconds, user_id)


@dataclass(frozen=True)
class SubmitResult:
    """`status`: "created", "exists" (already judged: read the stored judgment), "not_found" (no
    such assignment of the caller's), "unauthenticated" (token given, no active user has it),
    "invalid" (a field or a criterion name is wrong: check again with `project_criteria`),
    "skipped", "late_refused" (lease expired and the pair has what it needs)."""

    status: str
    user_id: int | None
    judgment_id: int | None
    pair_id: int | None
    swapped: bool | None
    preferred: str | None
    criteria: dict | None
    guideline_id: int | None
    late: bool | None
    project_id: int | None
    is_gold: bool | None
    gold_min_judged: int | None
    gold_min_accuracy: float | None
    project_criteria: list | None


def submit_judgment(
    *,
    assignment_id: int,
    now: datetime,
    fields_valid: bool,
    choice: str,
    strength: str,
    rationale: str,
    time_spent_ms: int | None,
    criteria: dict,
    preferred_by_swap: dict[bool, str],
    criteria_by_swap: dict[bool, dict],
    user_id: int | None = None,
    token: str | None = None,
) -> SubmitResult:
    """Store a judgment for the caller's assignment in one statement. The canonical preference and
    criteria are given for both display orders (`*_by_swap[swapped]`); the function picks the one
    the annotator saw. `fields_valid` False: the function still looks the assignment up (a repeat
    answers with the stored judgment, a missing one is "not_found") and then answers "invalid"."""
    params = [
        assignment_id,
        user_id,
        token,
        now,
        fields_valid,
        choice,
        strength,
        rationale,
        time_spent_ms,
        json.dumps(criteria if isinstance(criteria, dict) else {}),
        preferred_by_swap.get(False),
        preferred_by_swap.get(True),
        json.dumps(criteria_by_swap.get(False, {})),
        json.dumps(criteria_by_swap.get(True, {})),
    ]
    row = list(_call(_SUBMIT, params))
    for index in (6, 13):  # jsonb comes back as text (see above)
        if isinstance(row[index], str):
            row[index] = json.loads(row[index])
    return SubmitResult(*row)


# ---------------------------------------------------------------------------------------------
# The answers of the queue's specification (the same as queue.py's) from the functions' statuses
# ---------------------------------------------------------------------------------------------


def lease_next(*, project_id: int, now: datetime, user=None, token: str | None = None) -> Leased | None | bool:
    """`queue.lease_next` for pairs in one statement (outside a transaction: one round trip).
    With `token`, the caller is the token's owner; False when no active user has it."""
    result = next_assignment(project_id=project_id, now=now, user=user, token=token)
    if result.status == "unauthenticated":
        return False
    if result.status == "no_project":
        raise NotFound("No such project.")
    if result.status == "paused":
        raise Paused(paused_message(result.pause_reason))
    if result.status == "empty":
        return None
    assignment = Assignment(
        id=result.assignment_id,
        pair_id=result.pair_id,
        annotator_id=result.user_id,
        status=AssignmentStatus.LEASED,
        swapped=result.swapped,
        expires_at=result.expires_at,
    )
    assignment._state.adding = False
    assignment._state.db = "default"
    return Leased(assignment, resumed=result.status == "resumed", payload=result.payload)


def judgment_submit(
    *, assignment_id, annotator_id, token, choice, strength="", criteria, rationale="", time_spent_ms=None, now
) -> tuple[Judgment, bool] | bool:
    """`queue.result_submit` for pairs in one statement, its own transaction (autocommit). A gold
    judgment's pause check follows in a second transaction, once the judgment is stored. False
    when `token` is given and no active user has it."""
    valid = fields_valid(choice, strength, criteria, rationale, time_spent_ms)
    by_swap = {swapped: to_preference(choice, swapped) for swapped in (False, True)} if valid else {}
    criteria_by_swap = (
        {swapped: {name: to_preference(vote, swapped) for name, vote in criteria.items()} for swapped in (False, True)} if valid else {}
    )
    result = submit_judgment(
        assignment_id=assignment_id,
        user_id=annotator_id,
        token=token,
        now=now,
        fields_valid=valid,
        choice=choice,
        strength=strength,
        rationale=rationale,
        time_spent_ms=time_spent_ms,
        criteria=criteria,
        preferred_by_swap=by_swap,
        criteria_by_swap=criteria_by_swap,
    )
    if result.status == "unauthenticated":
        return False
    if result.status == "not_found":
        raise NotFound("No such assignment.")
    if result.status == "exists":
        # (A judgment committed while we waited for the lock is seen by this new statement.)
        return Judgment.objects.get(assignment_id=assignment_id), False
    if result.status == "invalid":
        validate_judgment(result.project_criteria, choice, strength, criteria, rationale, time_spent_ms)
        raise AssertionError("annotation_submit answered invalid for a valid submission")  # pragma: no cover
    if result.status == "skipped":
        raise Conflict(skipped_message(PAIR), code="skipped")
    if result.status == "late_refused":
        raise Conflict(late_refused_message(PAIR), code="lease_expired")
    judgment = Judgment(
        id=result.judgment_id,
        assignment_id=assignment_id,
        pair_id=result.pair_id,
        annotator_id=result.user_id,
        choice=choice,
        preferred=result.preferred,
        swapped=result.swapped,
        strength=strength,
        criteria=result.criteria,
        rationale=rationale,
        time_spent_ms=time_spent_ms,
        guideline_version_id=result.guideline_id,
        accepted_after_expiry=result.late,
        created_at=now,
    )
    judgment._state.adding = False
    judgment._state.db = "default"
    if result.is_gold:
        with transaction.atomic():
            check_gold_pause(result.project_id, result.user_id, result.gold_min_judged, result.gold_min_accuracy)
    return judgment, True
