"""The queue's PostgreSQL functions after migrating forward from each shipped state.

Migrations are append-only: a database migrated to `annotation.0005` before the wait-when-locked
fallback existed must get it from `0006` (and the response's own warning column from `0008`), and
each migration must install exactly the function text it carries. The test walks the annotation app back to 0004 (no functions), then forward one
shipped state at a time, reading the installed bodies from `pg_proc` at each step.
"""

from __future__ import annotations

import importlib
import re

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

M0005 = importlib.import_module("feedback_site.annotation.migrations.0005_queue_functions")
M0006 = importlib.import_module("feedback_site.annotation.migrations.0006_queue_next_waits_when_locked")
M0007 = importlib.import_module("feedback_site.annotation.migrations.0007_queue_next_never_waits_holding_locks")
M0008 = importlib.import_module("feedback_site.annotation.migrations.0008_response_warning")

# The fallback 0006 adds: a second candidate query that waits for the lock (no SKIP LOCKED).
FALLBACK = re.compile(r"FOR UPDATE OF p;\s*IF NOT FOUND THEN\s*EXIT;")
# What 0007 adds: a request holding locks of pairs it stepped over answers "busy" instead of waiting.
BUSY = "o_status := 'busy'"
# What 0008 removes: the queue reading the safety app's table (the warning is the response's own column).
SAFETY_TABLE = "safety_safetyscreen"


def _body(create_sql: str) -> str:
    """What `pg_proc.prosrc` holds for a CREATE FUNCTION ... AS $fn$ <body> $fn$ statement."""
    return create_sql.split("$fn$", 2)[1]


def _installed(name: str) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", [name])
        rows = cursor.fetchall()
    assert len(rows) <= 1, f"{name} is installed with {len(rows)} signatures"
    return rows[0][0] if rows else None


def _migrate_annotation_to(name: str) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([("annotation", name)])


def _migrate_every_app_to_latest() -> None:
    """Walking annotation back also unapplies the other apps' migrations that depend on its later
    ones (ratings' first migration needs annotation.0008): put the whole schema back, so the tests
    after this one find every table."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def _latest_annotation() -> str:
    executor = MigrationExecutor(connection)
    return max(name for app, name in executor.loader.graph.leaf_nodes() if app == "annotation")


def test_each_shipped_state_installs_its_own_functions():
    latest = _latest_annotation()
    try:
        _migrate_annotation_to("0004_rendered_html_and_gold_index")
        assert _installed("annotation_next") is None and _installed("annotation_submit") is None

        _migrate_annotation_to("0005_queue_functions")
        shipped = _installed("annotation_next")
        assert shipped == _body(M0005.NEXT)
        assert not FALLBACK.search(shipped)
        assert _installed("annotation_submit") == _body(M0005.SUBMIT)

        _migrate_annotation_to("0006_queue_next_waits_when_locked")
        assert _installed("annotation_next") == _body(M0006.NEXT)
        assert FALLBACK.search(_installed("annotation_next")) and BUSY not in _installed("annotation_next")
        assert _installed("annotation_submit") == _body(M0005.SUBMIT)

        _migrate_annotation_to("0007_queue_next_never_waits_holding_locks")
        assert _installed("annotation_next") == _body(M0007.NEXT)
        assert FALLBACK.search(_installed("annotation_next")) and BUSY in _installed("annotation_next")
        assert _installed("annotation_submit") == _body(M0005.SUBMIT)

        # Reversing puts the previous function back, not nothing.
        _migrate_annotation_to("0006_queue_next_waits_when_locked")
        assert _installed("annotation_next") == _body(M0006.NEXT)
        _migrate_annotation_to("0005_queue_functions")
        assert _installed("annotation_next") == _body(M0005.NEXT)

        _migrate_annotation_to("0008_response_warning")
        assert _installed("annotation_next") == _body(M0008.NEXT)
        assert SAFETY_TABLE not in _installed("annotation_next") and "ra.warning" in _installed("annotation_next")
        assert BUSY in _installed("annotation_next") and _installed("annotation_submit") == _body(M0005.SUBMIT)
        _migrate_annotation_to("0007_queue_next_never_waits_holding_locks")
        assert _installed("annotation_next") == _body(M0007.NEXT)

        _migrate_annotation_to(latest)
        assert _installed("annotation_next") == _body(M0008.NEXT)
    finally:
        _migrate_every_app_to_latest()


def test_0008_copies_the_warnings_of_responses_screened_before_it():
    """Responses the safety screen flagged "warn" before 0008 keep their warning: the migration
    copies it from the screen onto the response's new column, which the queue now reads."""
    from django.db.migrations.executor import MigrationExecutor

    before = ("annotation", "0007_queue_next_never_waits_holding_locks")
    try:
        _migrate_annotation_to(before[1])
        executor = MigrationExecutor(connection)
        old = executor.loader.project_state(before).apps
        project = old.get_model("projects", "Project").objects.create(name="Before 0008")
        prompt = old.get_model("annotation", "Prompt").objects.create(project=project, text="Q?")
        Response = old.get_model("annotation", "Response")
        ruled, scored, hidden, clean = (Response.objects.create(prompt=prompt, text=f"r{i}", sample_index=i) for i in range(4))
        Screen = old.get_model("safety", "SafetyScreen")
        Screen.objects.create(response=ruled, project=project, verdict="flagged", action="warn", matched_rule="weapons-explosives")
        Screen.objects.create(response=scored, project=project, verdict="flagged", action="warn", matched_rule="classifier")
        Screen.objects.create(response=hidden, project=project, verdict="flagged", action="hide", matched_rule="weapons-explosives")
        Screen.objects.create(response=clean, project=project, verdict="clean", action="")

        _migrate_annotation_to("0008_response_warning")
        from feedback_site.annotation.models import Response as Current
        from feedback_site.safety.selectors import warning_text

        warnings = dict(Current.objects.filter(prompt_id=prompt.pk).values_list("pk", "warning"))
        assert warnings == {
            ruled.pk: warning_text("weapons-explosives"),
            scored.pk: warning_text("classifier"),
            hidden.pk: "",
            clean.pk: "",
        }
    finally:
        _migrate_every_app_to_latest()
