"""The queue's PostgreSQL functions after migrating forward from each shipped state.

Migrations are append-only: a database migrated to `annotation.0005` before the wait-when-locked
fallback existed must get it from `0006`, and each migration must install exactly the function
text it carries. The test walks the annotation app back to 0004 (no functions), then forward one
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

# The fallback 0006 adds: a second candidate query that waits for the lock (no SKIP LOCKED).
FALLBACK = re.compile(r"FOR UPDATE OF p;\s*IF NOT FOUND THEN\s*EXIT;")
# What 0007 adds: a request holding locks of pairs it stepped over answers "busy" instead of waiting.
BUSY = "o_status := 'busy'"


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

        _migrate_annotation_to(latest)
        assert _installed("annotation_next") == _body(M0007.NEXT)
    finally:
        _migrate_annotation_to(latest)
