"""The queue's two hot paths as PostgreSQL functions: one round trip per request.

`annotation_next` and `annotation_submit` run the statements that `queue_sql.py` used to send one
by one (inside BEGIN ... COMMIT), in the same order and with the same locks, so the guarantees are
unchanged: each statement of a VOLATILE PL/pgSQL function takes a new snapshot under READ
COMMITTED, so the lease insert that re-counts a pair's slots after its row lock was granted sees
every lease committed before. Called in autocommit mode, a request is one statement and one
implicit transaction instead of BEGIN, three (or two) statements and COMMIT.

Rules that need no database (which display choice means which canonical preference, the checks of
a judgment's fields that do not depend on the project) stay in Python and are passed in; the
functions return a status that `queue_sql` turns into the same answers as before.

SQLite keeps the ORM path (services.py); on other vendors this migration does nothing.
"""

from django.db import migrations

NEXT = r"""
CREATE OR REPLACE FUNCTION annotation_next(
    p_project bigint, p_user integer, p_superuser boolean, p_token text, p_now timestamptz, p_swap boolean,
    p_max_candidates integer)
RETURNS TABLE (
    o_status text, o_user integer, o_pause_reason text, o_lease_seconds integer, o_criteria jsonb,
    o_assignment bigint, o_pair bigint, o_swapped boolean, o_expires_at timestamptz,
    o_q_id bigint, o_q_text text, o_q_html text, o_q_system text, o_q_history jsonb, o_q_history_html jsonb,
    o_ra_id bigint, o_ra_text text, o_ra_html text, o_rb_id bigint, o_rb_text text, o_rb_html text,
    o_sa_rule text, o_sb_rule text)
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
                EXIT;
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
           ra.id, ra.text, ra.text_html, rb.id, rb.text, rb.text_html, sa.matched_rule::text, sb.matched_rule::text
    FROM annotation_assignment a
    JOIN annotation_pair p ON p.id = a.pair_id
    JOIN annotation_prompt q ON q.id = p.prompt_id
    JOIN annotation_response ra ON ra.id = p.response_a_id
    JOIN annotation_response rb ON rb.id = p.response_b_id
    LEFT JOIN safety_safetyscreen sa ON sa.response_id = ra.id AND sa.verdict = 'flagged' AND sa.action = 'warn'
    LEFT JOIN safety_safetyscreen sb ON sb.response_id = rb.id AND sb.verdict = 'flagged' AND sb.action = 'warn'
    WHERE a.id = v_aid;
END
$fn$;
"""

SUBMIT = r"""
CREATE OR REPLACE FUNCTION annotation_submit(
    p_assignment bigint, p_user integer, p_token text, p_now timestamptz, p_fields_valid boolean,
    p_choice text, p_strength text, p_rationale text, p_time integer,
    p_criteria jsonb, p_preferred_unswapped text, p_preferred_swapped text,
    p_criteria_unswapped jsonb, p_criteria_swapped jsonb)
RETURNS TABLE (
    o_status text, o_user integer, o_judgment bigint, o_pair bigint, o_swapped boolean, o_preferred text,
    o_criteria jsonb, o_guideline bigint, o_late boolean, o_project bigint, o_is_gold boolean,
    o_gold_min_judged integer, o_gold_min_accuracy double precision, o_project_criteria jsonb)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_user integer; v_status text; v_swapped boolean; v_expires timestamptz; v_pair bigint;
    v_overlap integer; v_count integer; v_gold boolean; v_project bigint; v_pcriteria jsonb; v_dyn boolean;
    v_min_judged integer; v_min_acc double precision; v_guideline bigint; v_existing bigint;
    v_late boolean; v_need integer; v_live bigint; v_first text; v_complete boolean;
    v_preferred text; v_canonical jsonb;
BEGIN
    IF p_token IS NOT NULL THEN
        SELECT u.id INTO v_user FROM authtoken_token t JOIN auth_user u ON u.id = t.user_id
        WHERE t.key = p_token AND u.is_active;
        IF NOT FOUND THEN
            o_status := 'unauthenticated'; RETURN NEXT; RETURN;
        END IF;
    ELSE
        v_user := p_user;
    END IF;
    o_user := v_user;

    SELECT a.status, a.swapped, a.expires_at, a.pair_id, p.overlap, p.judgment_count, p.is_gold, p.project_id,
           pr.criteria, pr.dynamic_overlap, pr.gold_min_judged, pr.gold_min_accuracy,
           (SELECT g.id FROM projects_guidelineversion g WHERE g.project_id = p.project_id ORDER BY g.number DESC LIMIT 1),
           j.id
    INTO v_status, v_swapped, v_expires, v_pair, v_overlap, v_count, v_gold, v_project, v_pcriteria, v_dyn,
         v_min_judged, v_min_acc, v_guideline, v_existing
    FROM annotation_assignment a
    JOIN annotation_pair p ON p.id = a.pair_id
    JOIN projects_project pr ON pr.id = p.project_id
    LEFT JOIN annotation_judgment j ON j.assignment_id = a.id
    WHERE a.id = p_assignment AND a.annotator_id = v_user
    FOR UPDATE OF a, p;
    IF NOT FOUND THEN
        o_status := 'not_found'; RETURN NEXT; RETURN;
    END IF;
    o_pair := v_pair; o_swapped := v_swapped; o_project := v_project; o_project_criteria := v_pcriteria;
    -- Idempotent: a repeat answers with the stored judgment (the caller reads it in a new statement,
    -- which also sees one committed while we waited for the lock).
    IF v_existing IS NOT NULL OR v_status = 'submitted' THEN
        o_status := 'exists'; RETURN NEXT; RETURN;
    END IF;
    IF NOT p_fields_valid OR EXISTS (
        SELECT 1 FROM jsonb_object_keys(p_criteria) k WHERE NOT COALESCE(v_pcriteria, '[]'::jsonb) ? k
    ) THEN
        o_status := 'invalid'; RETURN NEXT; RETURN;
    END IF;
    IF v_status = 'skipped' THEN
        o_status := 'skipped'; RETURN NEXT; RETURN;
    END IF;
    v_late := v_expires <= p_now;
    IF v_late AND NOT v_gold THEN
        v_need := CASE WHEN v_dyn AND v_overlap > 0 AND v_count < 2 THEN 2 ELSE v_overlap END;
        SELECT count(*) INTO v_live FROM annotation_assignment
        WHERE pair_id = v_pair AND status = 'leased' AND expires_at > p_now AND id <> p_assignment;
        IF v_need - v_count - v_live <= 0 THEN
            o_status := 'late_refused'; RETURN NEXT; RETURN;
        END IF;
    END IF;
    v_preferred := CASE WHEN v_swapped THEN p_preferred_swapped ELSE p_preferred_unswapped END;
    v_canonical := CASE WHEN v_swapped THEN p_criteria_swapped ELSE p_criteria_unswapped END;

    INSERT INTO annotation_judgment (assignment_id, pair_id, annotator_id, choice, preferred, swapped, strength,
        criteria, rationale, time_spent_ms, guideline_version_id, accepted_after_expiry, created_at)
    VALUES (p_assignment, v_pair, v_user, p_choice, v_preferred, v_swapped, p_strength,
        v_canonical, p_rationale, p_time, v_guideline, v_late, p_now)
    RETURNING id INTO o_judgment;
    UPDATE annotation_assignment SET status = 'submitted', finished_at = p_now WHERE id = p_assignment;

    -- The pair's count, overlap and completeness after one more judgment (services._after_judgment;
    -- gold pairs never count toward overlap).
    IF NOT v_gold THEN
        v_count := v_count + 1;
        IF NOT v_dyn OR v_overlap = 0 THEN
            v_complete := v_count >= v_overlap;
        ELSIF v_count < 2 THEN
            v_overlap := greatest(v_overlap, v_count); v_complete := false;
        ELSIF v_count = 2 THEN
            SELECT preferred INTO v_first FROM annotation_judgment
            WHERE pair_id = v_pair AND id <> o_judgment ORDER BY id LIMIT 1;
            IF v_first = v_preferred THEN
                v_overlap := 2; v_complete := true;
            ELSE
                v_overlap := 3; v_complete := false;
            END IF;
        ELSE
            v_overlap := v_count; v_complete := true;
        END IF;
        UPDATE annotation_pair SET judgment_count = v_count, overlap = v_overlap, is_complete = v_complete
        WHERE id = v_pair;
    END IF;

    o_status := 'created'; o_preferred := v_preferred; o_criteria := v_canonical; o_guideline := v_guideline;
    o_late := v_late; o_is_gold := v_gold; o_gold_min_judged := v_min_judged; o_gold_min_accuracy := v_min_acc;
    RETURN NEXT;
END
$fn$;
"""


def create_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(NEXT)
        schema_editor.execute(SUBMIT)


def drop_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS annotation_next(bigint, integer, boolean, text, timestamptz, boolean, integer)")
        schema_editor.execute(
            "DROP FUNCTION IF EXISTS annotation_submit(bigint, integer, text, timestamptz, boolean, text, text, text, "
            "integer, jsonb, text, text, jsonb, jsonb)"
        )


class Migration(migrations.Migration):

    dependencies = [
        ("annotation", "0004_rendered_html_and_gold_index"),
        ("projects", "0003_membership_is_simulated_membership_pause_reason_and_more"),
        ("safety", "0001_initial"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunPython(create_functions, drop_functions)]
