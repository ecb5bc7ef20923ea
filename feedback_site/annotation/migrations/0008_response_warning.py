"""Response.warning: the warning annotators see before a response, owned by annotation.

Until now `annotation_next` read the safety app's table (`safety_safetyscreen`, flagged with the
action "warn") to build the payload's `safety_flag`, so the queue depended on a layer above it.
Now the warning is a column of the response: the safety screen writes it through
`annotation.services.responses_warn` when it screens, and the queue reads only its own tables.

This migration adds the column, copies the warnings of the responses screened so far (the wording
the safety app used when it was written), and installs `annotation_next` reading the column: the
same function as 0007 with the two safety joins gone and the last two output columns renamed
(o_ra_warning, o_rb_warning: the warning text, NULL when none). A changed output row needs DROP
before CREATE; reversing re-creates 0007's function (the column goes with the AddField).
"""

import importlib

from django.db import migrations, models

SIGNATURE = "annotation_next(bigint, integer, boolean, text, timestamptz, boolean, integer)"

NEXT = r"""CREATE OR REPLACE FUNCTION annotation_next(
    p_project bigint, p_user integer, p_superuser boolean, p_token text, p_now timestamptz, p_swap boolean,
    p_max_candidates integer)
RETURNS TABLE (
    o_status text, o_user integer, o_pause_reason text, o_lease_seconds integer, o_criteria jsonb,
    o_assignment bigint, o_pair bigint, o_swapped boolean, o_expires_at timestamptz,
    o_q_id bigint, o_q_text text, o_q_html text, o_q_system text, o_q_history jsonb, o_q_history_html jsonb,
    o_ra_id bigint, o_ra_text text, o_ra_html text, o_rb_id bigint, o_rb_text text, o_rb_html text,
    o_ra_warning text, o_rb_warning text)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_user integer; v_su boolean; v_project bigint; v_lease integer; v_criteria jsonb;
    v_gold_rate double precision; v_dyn boolean; v_role text; v_paused timestamptz; v_reason text;
    v_open bigint; v_given bigint; v_phase double precision; v_exp timestamptz;
    v_aid bigint; v_candidate bigint; v_skipped bigint[] := '{}'; v_status text := 'leased'; i integer;
BEGIN
    -- The caller: a user the view already authenticated, or the owner of an active API token.
    IF p_token IS NOT NULL THEN
        SELECT u.id, u.is_superuser INTO v_user, v_su
        FROM authtoken_token t JOIN auth_user u ON u.id = t.user_id WHERE t.key = p_token AND u.is_active;
        IF NOT FOUND THEN
            o_status := 'unauthenticated'; RETURN NEXT; RETURN;
        END IF;
    ELSE
        v_user := p_user; v_su := p_superuser;
    END IF;
    o_user := v_user;

    SELECT pr.id, pr.lease_seconds, pr.criteria, pr.gold_rate, pr.dynamic_overlap, m.role, m.paused_at, m.pause_reason
    INTO v_project, v_lease, v_criteria, v_gold_rate, v_dyn, v_role, v_paused, v_reason
    FROM projects_project pr LEFT JOIN projects_membership m ON m.project_id = pr.id AND m.user_id = v_user
    WHERE pr.id = p_project;
    IF v_project IS NULL OR (v_role IS NULL AND NOT v_su) THEN
        o_status := 'no_project'; RETURN NEXT; RETURN;
    END IF;
    IF v_paused IS NOT NULL THEN
        o_status := 'paused'; o_pause_reason := v_reason; RETURN NEXT; RETURN;
    END IF;
    v_exp := p_now + make_interval(secs => v_lease);

    -- A reload of the page must show the same pair, not lease a second one.
    SELECT a.id INTO v_open FROM annotation_assignment a JOIN annotation_pair p ON p.id = a.pair_id
    WHERE a.annotator_id = v_user AND a.status = 'leased' AND a.expires_at > p_now AND p.project_id = v_project
    ORDER BY a.id LIMIT 1;
    IF v_open IS NOT NULL THEN
        UPDATE annotation_assignment SET expires_at = v_exp WHERE id = v_open;
        v_aid := v_open; v_status := 'resumed';
    END IF;

    -- Gold pairs at the project's rate, spread evenly with a per-annotator phase (queue_sql.gold_turn).
    IF v_aid IS NULL AND v_gold_rate > 0 THEN
        SELECT count(*) INTO v_given FROM annotation_assignment a2 JOIN annotation_pair p2 ON p2.id = a2.pair_id
        WHERE a2.annotator_id = v_user AND p2.project_id = v_project;
        v_phase := v_user * 0.6180339887498949::double precision;
        v_phase := v_phase - floor(v_phase);
        IF v_gold_rate >= 1 OR floor((v_given + 1) * v_gold_rate + v_phase) > floor(v_given * v_gold_rate + v_phase) THEN
            -- No overlap limit and no lock: the unique (pair, annotator) constraint is all it needs.
            WITH c AS (
                SELECT p.id FROM annotation_pair p
                WHERE p.project_id = v_project AND p.is_gold
                  AND NOT EXISTS (SELECT 1 FROM annotation_assignment s WHERE s.pair_id = p.id AND s.annotator_id = v_user)
                ORDER BY md5(p.id::text || ':' || v_user::text)
                LIMIT 1
            )
            INSERT INTO annotation_assignment (pair_id, annotator_id, status, swapped, leased_at, expires_at, finished_at)
            SELECT c.id, v_user, 'leased', p_swap, p_now, v_exp, NULL FROM c
            ON CONFLICT (pair_id, annotator_id) DO NOTHING
            RETURNING id INTO v_aid;
            -- None left that this annotator has not seen: serve a normal pair.
        END IF;
    END IF;

    IF v_aid IS NULL THEN
        FOR i IN 1..p_max_candidates LOOP
            -- Pairs with a free slot, skipping those another request has locked.
            SELECT p.id INTO v_candidate FROM annotation_pair p
            WHERE p.project_id = v_project AND NOT p.is_complete AND NOT p.is_gold AND p.id <> ALL(v_skipped)
              AND NOT EXISTS (SELECT 1 FROM annotation_assignment s WHERE s.pair_id = p.id AND s.annotator_id = v_user)
              AND (CASE WHEN v_dyn AND p.overlap > 0 AND p.judgment_count < 2 THEN 2 ELSE p.overlap END)
                  > p.judgment_count + (SELECT count(*) FROM annotation_assignment l
                                        WHERE l.pair_id = p.id AND l.status = 'leased' AND l.expires_at > p_now)
            ORDER BY p.priority DESC, p.id
            LIMIT 1
            FOR UPDATE OF p SKIP LOCKED;
            IF NOT FOUND THEN
                -- Every pair left is locked by another request (the end of the queue, e.g. a submit
                -- on the last pair that needs this annotator): wait for it instead of answering
                -- "empty" while work remains. The row is re-checked once the lock is granted.
                -- Only a request that holds no pair lock may wait: one still holding the pairs it
                -- stepped over could deadlock with another waiter. It answers "busy" instead, and
                -- the caller sends the call again (a new transaction, those locks released).
                IF cardinality(v_skipped) > 0 THEN
                    o_status := 'busy'; RETURN NEXT; RETURN;
                END IF;
                SELECT p.id INTO v_candidate FROM annotation_pair p
                WHERE p.project_id = v_project AND NOT p.is_complete AND NOT p.is_gold AND p.id <> ALL(v_skipped)
                  AND NOT EXISTS (SELECT 1 FROM annotation_assignment s WHERE s.pair_id = p.id AND s.annotator_id = v_user)
                  AND (CASE WHEN v_dyn AND p.overlap > 0 AND p.judgment_count < 2 THEN 2 ELSE p.overlap END)
                      > p.judgment_count + (SELECT count(*) FROM annotation_assignment l
                                            WHERE l.pair_id = p.id AND l.status = 'leased' AND l.expires_at > p_now)
                ORDER BY p.priority DESC, p.id
                LIMIT 1
                FOR UPDATE OF p;
                IF NOT FOUND THEN
                    EXIT;
                END IF;
            END IF;
            -- A new statement, so a new snapshot: it sees every lease committed before our lock.
            INSERT INTO annotation_assignment (pair_id, annotator_id, status, swapped, leased_at, expires_at, finished_at)
            SELECT p.id, v_user, 'leased', p_swap, p_now, v_exp, NULL FROM annotation_pair p
            WHERE p.id = v_candidate
              AND (CASE WHEN v_dyn AND p.overlap > 0 AND p.judgment_count < 2 THEN 2 ELSE p.overlap END)
                  > p.judgment_count + (SELECT count(*) FROM annotation_assignment l
                                        WHERE l.pair_id = p.id AND l.status = 'leased' AND l.expires_at > p_now)
            ON CONFLICT (pair_id, annotator_id) DO NOTHING
            RETURNING id INTO v_aid;
            EXIT WHEN v_aid IS NOT NULL;
            -- Filled between our snapshot and our lock (or already leased to this annotator by a
            -- concurrent request of theirs): step over it.
            v_skipped := v_skipped || v_candidate;
        END LOOP;
    END IF;

    IF v_aid IS NULL THEN
        o_status := 'empty'; RETURN NEXT; RETURN;
    END IF;
    RETURN QUERY
    SELECT v_status, v_user, NULL::text, v_lease, v_criteria,
           a.id, a.pair_id, a.swapped, a.expires_at,
           q.id, q.text, q.text_html, q.system_prompt, q.history, q.history_html,
           ra.id, ra.text, ra.text_html, rb.id, rb.text, rb.text_html, NULLIF(ra.warning, ''), NULLIF(rb.warning, '')
    FROM annotation_assignment a
    JOIN annotation_pair p ON p.id = a.pair_id
    JOIN annotation_prompt q ON q.id = p.prompt_id
    JOIN annotation_response ra ON ra.id = p.response_a_id
    JOIN annotation_response rb ON rb.id = p.response_b_id
    WHERE a.id = v_aid;
END
$fn$;
"""


def _warning(rule: str) -> str:
    # The wording of safety.selectors at the time of this migration (frozen here on purpose).
    if rule == "classifier":
        return "The safety classifier scored this response as possibly harmful."
    return f"This response matched the safety rule “{rule}”." if rule else "This response was flagged."


def copy_warnings(apps, schema_editor):
    SafetyScreen = apps.get_model("safety", "SafetyScreen")
    Response = apps.get_model("annotation", "Response")
    by_warning: dict[str, list[int]] = {}
    screens = SafetyScreen.objects.filter(verdict="flagged", action="warn").values_list("response_id", "matched_rule")
    for response_id, rule in screens.iterator():
        by_warning.setdefault(_warning(rule), []).append(response_id)
    for warning, ids in by_warning.items():
        for start in range(0, len(ids), 5000):
            Response.objects.filter(pk__in=ids[start : start + 5000]).update(warning=warning)


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
        schema_editor.execute(NEXT)


def restore_0007_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        previous = importlib.import_module("feedback_site.annotation.migrations.0007_queue_next_never_waits_holding_locks")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
        schema_editor.execute(previous.NEXT)


class Migration(migrations.Migration):

    dependencies = [
        ("annotation", "0007_queue_next_never_waits_holding_locks"),
        ("safety", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="response",
            name="warning",
            field=models.TextField(blank=True, db_default="", default="", editable=False),
        ),
        migrations.RunPython(copy_warnings, migrations.RunPython.noop),
        migrations.RunPython(create_function, restore_0007_function),
    ]
