"""Bulk SQL seeding for the scale benchmarks: prompts, responses, pairs and (optionally) submitted
assignments with their judgments, generated inside PostgreSQL with `INSERT ... SELECT ...
generate_series` (no ORM loop, no rows through Python), so a million rows take seconds to a few
minutes instead of hours.

The rows are what the service itself writes: each pair has a prompt and two responses of its own
(with stored HTML, as imports store it), judged pairs have `overlap` submitted assignments from
distinct annotators, one judgment each (choice consistent with `swapped` and `preferred`), and
`judgment_count`/`is_complete` to match, so every constraint (pair_once_per_annotator,
pair_never_over_judged, one judgment per assignment) holds.

The project and its annotator accounts come from `manage.py seed_load_test --pairs 0` (users,
tokens and memberships through the ORM's bulk_create, a few seconds for 10,000).
"""

from __future__ import annotations

import time

import psycopg

_TEXT = "Can you explain item {n} to a beginner? Give one short example and say when it matters. Please keep it under a hundred words."
_ANSWER = (
    "Sure. Item {n} is easiest to see with an example: take a small case, work it through "
    "step by step, and check the result. Variant {k}: it matters whenever you need the same "
    "answer twice, because a repeatable method beats a guess."
)


def _sql_text(template: str, n: str, k: str = "0") -> str:
    parts = template.replace("'", "''").split("{n}")
    out = f" || {n}::text || ".join(f"'{p}'" for p in parts)
    return out.replace("{k}", f"' || {k}::text || '")


def seed_pairs(db_url: str, project_id: int, pairs: int, *, judged_overlap: int = 0, queue_overlap: int = 3, log=print) -> dict:
    """Adds `pairs` pairs to the project. With judged_overlap = K > 0 every pair is complete with K
    judgments from the project's annotators (K <= number of annotators); with 0 the pairs are
    queued with `queue_overlap` and no judgments. Returns timings and counts."""
    started = time.perf_counter()
    timings = {}
    prompt_text = _sql_text(_TEXT, "g")
    with psycopg.connect(db_url, autocommit=False) as conn:
        conn.execute("SET LOCAL synchronous_commit = off")
        first_prompt = conn.execute("SELECT COALESCE(MAX(id), 0) FROM annotation_prompt").fetchone()[0]
        t = time.perf_counter()
        conn.execute(
            f"""INSERT INTO annotation_prompt (project_id, text, system_prompt, history, metadata, split, created_at,
                                               text_html, history_html)
                SELECT %(p)s, {prompt_text}, '', '[]'::jsonb, '{{}}'::jsonb, 'train', now(), '<p>' || {prompt_text} || '</p>',
                       '[]'::jsonb
                FROM generate_series(1, %(n)s) AS g""",
            {"p": project_id, "n": pairs},
        )
        timings["prompts_s"] = time.perf_counter() - t
        answer = _sql_text(_ANSWER, "p.id", "s.k")
        t = time.perf_counter()
        conn.execute(
            f"""INSERT INTO annotation_response (prompt_id, text, text_html, sample_index, metadata, created_at)
                SELECT p.id, {answer}, '<p>' || {answer} || '</p>', s.k, '{{}}'::jsonb, now()
                FROM annotation_prompt p CROSS JOIN (VALUES (0), (1)) AS s(k)
                WHERE p.project_id = %(p)s AND p.id > %(first)s""",
            {"p": project_id, "first": first_prompt},
        )
        timings["responses_s"] = time.perf_counter() - t
        overlap = judged_overlap or queue_overlap
        t = time.perf_counter()
        conn.execute(
            """INSERT INTO annotation_pair (project_id, prompt_id, response_a_id, response_b_id, overlap, judgment_count,
                                            is_complete, priority, prelabel, source, created_at, is_gold, gold_label)
               SELECT p.project_id, p.id, ra.id, rb.id, %(overlap)s, %(count)s, %(complete)s, 0, '', 'imported', now(),
                      false, ''
               FROM annotation_prompt p
               JOIN annotation_response ra ON ra.prompt_id = p.id AND ra.sample_index = 0
               JOIN annotation_response rb ON rb.prompt_id = p.id AND rb.sample_index = 1
               WHERE p.project_id = %(p)s AND p.id > %(first)s
               ORDER BY p.id""",
            {"p": project_id, "first": first_prompt, "overlap": overlap, "count": judged_overlap, "complete": judged_overlap > 0},
        )
        timings["pairs_s"] = time.perf_counter() - t
        judgments = 0
        if judged_overlap:
            annotators = conn.execute(
                "SELECT count(*) FROM projects_membership WHERE project_id = %s AND role = 'annotator'", [project_id]
            ).fetchone()[0]
            if annotators < judged_overlap:
                raise SystemExit(f"{judged_overlap} judgments per pair need at least as many annotators (have {annotators})")
            # The annotator ids as a constant array parameter: an aggregate in the query would be
            # re-evaluated per row by a nested loop while the new pairs have no statistics yet.
            ann = [
                row[0]
                for row in conn.execute(
                    "SELECT user_id FROM projects_membership WHERE project_id = %s AND role = 'annotator' ORDER BY user_id", [project_id]
                )
            ]
            conn.execute("ANALYZE annotation_pair")
            t = time.perf_counter()
            conn.execute(
                """WITH ranked AS (SELECT pr.id, row_number() OVER (ORDER BY pr.id) - 1 AS r FROM annotation_pair pr
                                   JOIN annotation_prompt p ON p.id = pr.prompt_id
                                   WHERE pr.project_id = %(p)s AND p.id > %(first)s)
                   INSERT INTO annotation_assignment (pair_id, annotator_id, status, swapped, leased_at, expires_at, finished_at)
                   SELECT ranked.id, (%(ann)s::int[])[((ranked.r * %(k)s + k) %% %(n_ann)s) + 1], 'submitted',
                          (ranked.r + k) %% 2 = 1, now(), now() + interval '10 minutes', now()
                   FROM ranked, generate_series(0, %(k)s - 1) AS k""",
                {"p": project_id, "first": first_prompt, "k": judged_overlap, "ann": ann, "n_ann": len(ann)},
            )
            conn.execute("ANALYZE annotation_assignment")
            timings["assignments_s"] = time.perf_counter() - t
            t = time.perf_counter()
            cur = conn.execute(
                """WITH a AS (SELECT a.id, a.pair_id, a.annotator_id, a.swapped,
                                     CASE WHEN abs(hashint8(a.id)) %% 10 < 6 THEN 'a'
                                          WHEN abs(hashint8(a.id)) %% 10 < 9 THEN 'b' ELSE 'tie' END AS preferred
                              FROM annotation_assignment a JOIN annotation_pair pr ON pr.id = a.pair_id
                              JOIN annotation_prompt p ON p.id = pr.prompt_id
                              WHERE pr.project_id = %(p)s AND p.id > %(first)s)
                   INSERT INTO annotation_judgment (assignment_id, pair_id, annotator_id, choice, preferred, swapped, strength,
                                                    criteria, rationale, time_spent_ms, accepted_after_expiry, created_at)
                   SELECT a.id, a.pair_id, a.annotator_id,
                          CASE WHEN a.preferred = 'tie' THEN 'tie'
                               WHEN (a.preferred = 'a') <> a.swapped THEN 'left' ELSE 'right' END,
                          a.preferred, a.swapped, '', '{}'::jsonb, '', 4000 + abs(hashint8(a.id)) %% 20000, false, now()
                   FROM a ORDER BY a.id""",
                {"p": project_id, "first": first_prompt},
            )
            judgments = cur.rowcount
            timings["judgments_s"] = time.perf_counter() - t
        conn.commit()
    t = time.perf_counter()
    with psycopg.connect(db_url, autocommit=True) as conn:
        for table in (
            "annotation_prompt",
            "annotation_response",
            "annotation_pair",
            "annotation_assignment",
            "annotation_judgment",
            "projects_membership",
            "auth_user",
            "authtoken_token",
        ):
            conn.execute(f"ANALYZE {table}")
    timings["analyze_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - started
    log(
        f"  bulk seed: {pairs:,} pairs, {judgments:,} judgments in {timings['total_s']:.1f} s "
        + " ".join(f"{k}={v:.1f}" for k, v in timings.items() if k != "total_s")
    )
    return {"pairs": pairs, "judgments": judgments, **timings}
