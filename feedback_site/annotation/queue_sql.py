"""The queue's two hot paths (next pair, submit) in hand-written SQL for PostgreSQL.

Same guarantees and same answers as the ORM implementation in `services.py` (which SQLite, the
laptop default, keeps using); written by hand because the ORM spent most of each request
compiling queries. Per request:

next   1. project, the caller's membership (role, pause), their open lease and (when the project
          mixes in gold pairs) how many pairs they were already given — one statement;
       2. an open lease: push its expiry and read the payload — one statement; done.
       2'. otherwise lock a candidate with `FOR UPDATE SKIP LOCKED` (pairs with free slots only);
       3'. insert the lease, re-counting the pair's slots in the same (new, so fresh-snapshot)
          statement — under READ COMMITTED it sees every lease committed before our row lock was
          granted — and read the payload: one `WITH ins AS (INSERT ...) SELECT ...` statement.
submit 1. lock the assignment and its pair, with the project's settings, the latest guideline
          version and an existing judgment — one statement;
       2. insert the judgment, mark the assignment submitted and count it on the pair — one
          statement. Late submits, dynamic overlap and gold pairs add one small statement each.

Payload HTML is read from the stored `text_html` columns (see `annotation.rendered`).

The statements are sent with server-side parameter binding (Django's own cursors bind on the
client), so psycopg prepares each of them on a connection after a few uses and PostgreSQL stops
re-planning them per request; with persistent connections (CONN_MAX_AGE) that saves most of
their planning time. They still pass through Django's cursor wrapper (query logging, execute
wrappers, error translation).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection

from feedback_site.annotation.rendered import fill_rows, render_history
from feedback_site.core.rendering import render_markdown
from feedback_site.safety.selectors import warn_flag

_swap_random = random.SystemRandom()


def _cursor():
    """A Django-wrapped cursor with server-side binding (so psycopg can prepare the statement)."""
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(ServerBindingCursor(connection.connection))
_MAX_CANDIDATES = 50

# Judgments a pair needs *now*. With dynamic overlap a pair needs 2 until it has 2; the submit that
# brings it to 2 then sets `overlap` to 2 (agreement, complete) or 3 (disagreement).
_NEED = "(CASE WHEN %(dyn)s AND p.overlap > 0 AND p.judgment_count < 2 THEN 2 ELSE p.overlap END)"
_LIVE = (
    "(SELECT count(*) FROM annotation_assignment l "
    "WHERE l.pair_id = p.id AND l.status = 'leased' AND l.expires_at > %(now)s)"
)

# The caller: either an already authenticated user, or an API token resolved here (so the hot
# path spends no separate statement on authentication). No row: no such active token.
_CALLER_GIVEN = "(SELECT %(u)s::integer AS id, %(su)s::boolean AS is_superuser)"
_CALLER_TOKEN = (
    "(SELECT u.id, u.is_superuser FROM authtoken_token t JOIN auth_user u ON u.id = t.user_id "
    "WHERE t.key = %(key)s AND u.is_active)"
)

_PROJECT_AND_MEMBER = """
SELECT au.id, au.is_superuser, pr.id, pr.lease_seconds, pr.criteria, pr.gold_rate, pr.dynamic_overlap,
       m.role, m.paused_at, m.pause_reason,
       ol.id,
       CASE WHEN pr.gold_rate > 0 THEN (
           SELECT count(*) FROM annotation_assignment a2 JOIN annotation_pair p2 ON p2.id = a2.pair_id
           WHERE a2.annotator_id = au.id AND p2.project_id = pr.id) END
FROM {caller} au
LEFT JOIN projects_project pr ON pr.id = %(p)s
LEFT JOIN projects_membership m ON m.project_id = pr.id AND m.user_id = au.id
LEFT JOIN LATERAL (
    SELECT a.id FROM annotation_assignment a JOIN annotation_pair p ON p.id = a.pair_id
    WHERE a.annotator_id = au.id AND a.status = 'leased' AND a.expires_at > %(now)s AND p.project_id = pr.id
    ORDER BY a.id LIMIT 1
) ol ON true
"""
_PROJECT_AND_MEMBER_GIVEN = _PROJECT_AND_MEMBER.format(caller=_CALLER_GIVEN)
_PROJECT_AND_MEMBER_TOKEN = _PROJECT_AND_MEMBER.format(caller=_CALLER_TOKEN)

_PAYLOAD_COLUMNS = """
SELECT a.id, a.pair_id, a.swapped, a.expires_at,
       q.id, q.text, q.text_html, q.system_prompt, q.history, q.history_html,
       ra.id, ra.text, ra.text_html, rb.id, rb.text, rb.text_html, sa.matched_rule, sb.matched_rule
FROM a
JOIN annotation_pair p ON p.id = a.pair_id
JOIN annotation_prompt q ON q.id = p.prompt_id
JOIN annotation_response ra ON ra.id = p.response_a_id
JOIN annotation_response rb ON rb.id = p.response_b_id
LEFT JOIN safety_safetyscreen sa ON sa.response_id = ra.id AND sa.verdict = 'flagged' AND sa.action = 'warn'
LEFT JOIN safety_safetyscreen sb ON sb.response_id = rb.id AND sb.verdict = 'flagged' AND sb.action = 'warn'
"""

_RESUME = (
    "WITH a AS (UPDATE annotation_assignment SET expires_at = %(exp)s WHERE id = %(aid)s "
    "RETURNING id, pair_id, swapped, expires_at)" + _PAYLOAD_COLUMNS
)

_CANDIDATE = f"""
SELECT p.id FROM annotation_pair p
WHERE p.project_id = %(p)s AND NOT p.is_complete AND NOT p.is_gold AND p.id <> ALL(%(skipped)s::bigint[])
  AND NOT EXISTS (SELECT 1 FROM annotation_assignment s WHERE s.pair_id = p.id AND s.annotator_id = %(u)s)
  AND {_NEED} > p.judgment_count + {_LIVE}
ORDER BY p.priority DESC, p.id
LIMIT 1
FOR UPDATE OF p SKIP LOCKED
"""

_LEASE = f"""
WITH a AS (
    INSERT INTO annotation_assignment (pair_id, annotator_id, status, swapped, leased_at, expires_at, finished_at)
    SELECT p.id, %(u)s, 'leased', %(sw)s, %(now)s, %(exp)s, NULL FROM annotation_pair p
    WHERE p.id = %(pair)s AND {_NEED} > p.judgment_count + {_LIVE}
    ON CONFLICT (pair_id, annotator_id) DO NOTHING
    RETURNING id, pair_id, swapped, expires_at
)""" + _PAYLOAD_COLUMNS

# A gold pair has no overlap limit (each annotator may get it once) and is not locked: the unique
# (pair, annotator) constraint is all it needs. The order is a per-annotator hash of the pair id,
# so annotators do not all get the gold pairs in the same order.
_GOLD_LEASE = """
WITH c AS (
    SELECT p.id FROM annotation_pair p
    WHERE p.project_id = %(p)s AND p.is_gold
      AND NOT EXISTS (SELECT 1 FROM annotation_assignment s WHERE s.pair_id = p.id AND s.annotator_id = %(u)s)
    ORDER BY md5(p.id::text || ':' || %(u)s::text)
    LIMIT 1
), a AS (
    INSERT INTO annotation_assignment (pair_id, annotator_id, status, swapped, leased_at, expires_at, finished_at)
    SELECT c.id, %(u)s, 'leased', %(sw)s, %(now)s, %(exp)s, NULL FROM c
    ON CONFLICT (pair_id, annotator_id) DO NOTHING
    RETURNING id, pair_id, swapped, expires_at
)""" + _PAYLOAD_COLUMNS


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


def gold_turn(user_id: int, given_so_far: int, rate: float) -> bool:
    """Whether the annotator's next assignment (their `given_so_far + 1`-th in the project) is a
    gold pair. Gold pairs are spread evenly at `rate` with a fixed per-annotator phase: with rate
    0.1 every 10th assignment is gold, at a position in each run of 10 that differs between
    annotators, so the share is exact over any stretch and the position predicts nothing."""
    if rate <= 0:
        return False
    if rate >= 1:
        return True
    phase = (user_id * 0.6180339887498949) % 1.0
    return math.floor((given_so_far + 1) * rate + phase) > math.floor(given_so_far * rate + phase)


def _payload(row, criteria, lease_seconds) -> dict:
    (aid, _pair_id, swapped, expires_at, q_id, q_text, q_html, q_system, q_history, q_history_html,
     ra_id, ra_text, ra_html, rb_id, rb_text, rb_html, sa_rule, sb_rule) = row
    # Django reads jsonb as text (it decodes JSONField values itself); so do we.
    if isinstance(q_history, str):
        q_history = json.loads(q_history)
    if isinstance(q_history_html, str):
        q_history_html = json.loads(q_history_html)
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
    # The safety screen's "blur with a warning" flag (feedback_site.safety): None unless flagged.
    flag_a, flag_b = warn_flag(sa_rule), warn_flag(sb_rule)
    left, right = ((rb_text, rb_html, flag_b), (ra_text, ra_html, flag_a)) if swapped else ((ra_text, ra_html, flag_a), (rb_text, rb_html, flag_b))
    return {
        "assignment_id": aid,
        "prompt": {
            "text": q_text,
            "html": q_html,
            "system_prompt": q_system,
            "history": [
                {"role": turn["role"], "content": turn["content"], "html": html}
                for turn, html in zip(q_history, q_history_html)
            ],
        },
        "left": {"text": left[0], "html": left[1], "safety_flag": left[2]},
        "right": {"text": right[0], "html": right[1], "safety_flag": right[2]},
        "criteria": list(criteria or []),
        "expires_at": expires_at.isoformat(),
        "lease_seconds": lease_seconds,
    }


def _leased(status: str, row, criteria, lease_seconds, user_id: int) -> NextResult:
    return NextResult(status, _payload(row, criteria, lease_seconds), assignment_id=row[0], pair_id=row[1],
                      swapped=row[2], expires_at=row[3], user_id=user_id)


def next_assignment(*, project_id: int, now: datetime, user=None, token: str | None = None) -> NextResult:
    """Call inside a transaction (`services.assignment_next` opens it). The caller is `user`, or
    the owner of API `token` (status "unauthenticated" when no active user has it)."""
    params = {"p": project_id, "now": now}
    if token is not None:
        params["key"] = token
        sql = _PROJECT_AND_MEMBER_TOKEN
    else:
        params.update(u=user.pk, su=bool(user.is_superuser))
        sql = _PROJECT_AND_MEMBER_GIVEN
    with _cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            return NextResult("unauthenticated")
        (user_id, is_superuser, found_project, lease_seconds, criteria, gold_rate, dynamic, role, paused_at,
         pause_reason, open_id, given) = row
        params["u"] = user_id
        if found_project is None or (role is None and not is_superuser):
            return NextResult("no_project", user_id=user_id)
        if paused_at is not None:
            return NextResult("paused", pause_reason=pause_reason, user_id=user_id)
        if isinstance(criteria, str):
            criteria = json.loads(criteria)
        params["exp"] = now + timedelta(seconds=lease_seconds)
        params["dyn"] = bool(dynamic)
        if open_id is not None:
            # A reload of the page must show the same pair, not lease a second one.
            params["aid"] = open_id
            cursor.execute(_RESUME, params)
            return _leased("resumed", cursor.fetchone(), criteria, lease_seconds, user_id)

        params["sw"] = _swap_random.random() < 0.5
        if given is not None and gold_turn(user_id, given, gold_rate):
            cursor.execute(_GOLD_LEASE, params)
            found = cursor.fetchone()
            if found is not None:
                return _leased("leased", found, criteria, lease_seconds, user_id)
            # No gold pair left that this annotator has not seen: serve a normal one.

        skipped: list[int] = []
        for _ in range(_MAX_CANDIDATES):
            params["skipped"] = skipped
            cursor.execute(_CANDIDATE, params)
            candidate = cursor.fetchone()
            if candidate is None:
                return NextResult("empty", user_id=user_id)
            params["pair"] = candidate[0]
            cursor.execute(_LEASE, params)
            found = cursor.fetchone()
            if found is not None:
                return _leased("leased", found, criteria, lease_seconds, user_id)
            # Filled between our snapshot and our lock (or, for a concurrent request of the same
            # annotator, already leased to them): step over it.
            skipped.append(candidate[0])
    return NextResult("empty", user_id=user_id)


# ---------------------------------------------------------------------------------------------
# Submit
# ---------------------------------------------------------------------------------------------

_LOCK_FOR_SUBMIT = """
SELECT a.status, a.swapped, a.expires_at, a.pair_id,
       p.overlap, p.judgment_count, p.is_gold, p.gold_label, p.project_id,
       pr.criteria, pr.dynamic_overlap, pr.gold_min_judged, pr.gold_min_accuracy,
       (SELECT g.id FROM projects_guidelineversion g WHERE g.project_id = p.project_id ORDER BY g.number DESC LIMIT 1),
       j.id, a.annotator_id
FROM annotation_assignment a
JOIN annotation_pair p ON p.id = a.pair_id
JOIN projects_project pr ON pr.id = p.project_id
LEFT JOIN annotation_judgment j ON j.assignment_id = a.id
WHERE a.id = %(aid)s AND a.annotator_id = {caller}
FOR UPDATE OF a, p
"""

_LIVE_EXCEPT = (
    "SELECT count(*) FROM annotation_assignment "
    "WHERE pair_id = %(pair)s AND status = 'leased' AND expires_at > %(now)s AND id <> %(aid)s"
)

_INSERT_JUDGMENT = """
WITH j AS (
    INSERT INTO annotation_judgment (assignment_id, pair_id, annotator_id, choice, preferred, swapped, strength,
        criteria, rationale, time_spent_ms, guideline_version_id, accepted_after_expiry, created_at)
    VALUES (%(aid)s, %(pair)s, %(u)s, %(choice)s, %(preferred)s, %(swapped)s, %(strength)s,
        %(criteria)s::jsonb, %(rationale)s, %(time)s, %(guideline)s, %(late)s, %(now)s)
    RETURNING id
), a AS (
    UPDATE annotation_assignment SET status = 'submitted', finished_at = %(now)s WHERE id = %(aid)s
){pair_update}
SELECT id FROM j
"""
_PAIR_UPDATE = """, p AS (
    UPDATE annotation_pair SET judgment_count = %(count)s, overlap = %(overlap)s, is_complete = %(complete)s
    WHERE id = %(pair)s
)"""


_LOCK_FOR_SUBMIT_GIVEN = _LOCK_FOR_SUBMIT.format(caller="%(u)s")
_LOCK_FOR_SUBMIT_TOKEN = _LOCK_FOR_SUBMIT.format(
    caller="(SELECT t.user_id FROM authtoken_token t JOIN auth_user u ON u.id = t.user_id WHERE t.key = %(key)s AND u.is_active)"
)


@dataclass(frozen=True)
class LockedSubmit:
    status: str
    swapped: bool
    expires_at: datetime
    pair_id: int
    overlap: int
    judgment_count: int
    is_gold: bool
    gold_label: str
    project_id: int
    criteria: list
    dynamic_overlap: bool
    gold_min_judged: int
    gold_min_accuracy: float
    guideline_id: int | None
    judgment_id: int | None
    user_id: int


def lock_for_submit(*, assignment_id: int, user_id: int | None = None, token: str | None = None) -> LockedSubmit | None:
    """Lock the caller's assignment and its pair. None: no such assignment of theirs (or, with a
    token, no active user has that token: the caller tells the two apart)."""
    with _cursor() as cursor:
        if token is not None:
            cursor.execute(_LOCK_FOR_SUBMIT_TOKEN, {"aid": assignment_id, "key": token})
        else:
            cursor.execute(_LOCK_FOR_SUBMIT_GIVEN, {"aid": assignment_id, "u": user_id})
        row = cursor.fetchone()
    if row is None:
        return None
    locked = LockedSubmit(*row)
    if isinstance(locked.criteria, str):
        locked = LockedSubmit(*row[:9], json.loads(locked.criteria), *row[10:])
    return locked


def live_leases_except(*, pair_id: int, assignment_id: int, now: datetime) -> int:
    with _cursor() as cursor:
        cursor.execute(_LIVE_EXCEPT, {"pair": pair_id, "aid": assignment_id, "now": now})
        return cursor.fetchone()[0]


def other_preferences(pair_id: int) -> list[str]:
    """Preferences already stored on a pair (a fresh statement: run it after the pair is locked)."""
    with _cursor() as cursor:
        cursor.execute("SELECT preferred FROM annotation_judgment WHERE pair_id = %s ORDER BY id", [pair_id])
        return [r[0] for r in cursor.fetchall()]


def insert_judgment(*, params: dict, pair_update: dict | None) -> int:
    sql = _INSERT_JUDGMENT.format(pair_update=_PAIR_UPDATE if pair_update is not None else "")
    params = dict(params, criteria=json.dumps(params["criteria"]))
    if pair_update is not None:
        params.update(pair_update)
    with _cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]
