"""Snapshot creation as a background job: the API answers 202 at once, a real Celery worker
builds the files from PostgreSQL with progress on the row, a failure half-way leaves no files
and no hash, and the job's content hash equals the synchronous build's on the same data."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token

from feedback_site.snapshots.models import Snapshot
from feedback_site.snapshots.services import snapshot_create, snapshot_start
from tests.quality.conftest import bulk_judge
from tests.workers.conftest import redis_broker, start_worker, wait_for  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def judged(project, make_pairs, make_user, add_member):
    """40 pairs, two annotators each; annotator y agrees with x on three pairs in four."""
    x, y = make_user("bx"), make_user("by")
    add_member(project, x, "annotator")
    add_member(project, y, "annotator")
    pairs = make_pairs(project, 40, overlap=2)
    rows = []
    for i, pair in enumerate(pairs):
        rows.append(dict(pair=pair, user=x, preferred="a", rationale="because " * (i % 7)))
        rows.append(dict(pair=pair, user=y, preferred="a" if i % 4 else "b", swapped=bool(i % 3)))
    bulk_judge(rows)
    return project


@pytest.fixture
def progress_log():
    """Every write to a snapshot row, as the database commits it (a trigger into a side table), so
    the test sees what other requests saw while the job ran. PostgreSQL needs a PL/pgSQL function
    for the trigger's body; SQLite (the embedded default) takes the INSERT inline."""
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE snapshot_progress_log (status text, done bigint, total bigint)")
        if postgres:
            cursor.execute(
                "CREATE FUNCTION snapshot_progress_note() RETURNS trigger AS $$ BEGIN "
                "INSERT INTO snapshot_progress_log VALUES (NEW.status, NEW.progress_done, NEW.progress_total); "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER snapshot_progress_note AFTER UPDATE ON snapshots_snapshot "
                "FOR EACH ROW EXECUTE FUNCTION snapshot_progress_note()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER snapshot_progress_note AFTER UPDATE ON snapshots_snapshot FOR EACH ROW BEGIN "
                "INSERT INTO snapshot_progress_log VALUES (NEW.status, NEW.progress_done, NEW.progress_total); END"
            )

    def rows():
        with connection.cursor() as cursor:
            cursor.execute("SELECT status, done, total FROM snapshot_progress_log")
            return cursor.fetchall()

    yield rows
    with connection.cursor() as cursor:
        if postgres:
            cursor.execute("DROP TRIGGER IF EXISTS snapshot_progress_note ON snapshots_snapshot")
            cursor.execute("DROP FUNCTION IF EXISTS snapshot_progress_note()")
        else:
            cursor.execute("DROP TRIGGER IF EXISTS snapshot_progress_note")
        cursor.execute("DROP TABLE IF EXISTS snapshot_progress_log")


def _api(user) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")


def test_api_queues_the_build_a_worker_streams_it_with_progress_and_the_hash_matches_a_synchronous_build(
    judged,
    site_admin,
    start_worker,
    progress_log,  # noqa: F811
):
    project = judged
    client = _api(site_admin)
    answer = client.post(
        f"/api/v1/projects/{project.pk}/snapshots/", data=json.dumps({"aggregation": "majority"}), content_type="application/json"
    )
    assert answer.status_code == 202, answer.content
    body = answer.json()
    assert body["status"] == "pending" and body["content_hash"] == "" and body["number"] == 1

    worker = start_worker(queues="default")
    snapshot = wait_for(
        lambda: Snapshot.objects.filter(pk=body["id"], status__in=["ready", "failed"]).first(),
        timeout=120,
        worker=worker,
        what="the snapshot build",
    )
    assert snapshot.status == "ready", snapshot.error
    assert "snapshots.build" in worker.output()
    assert (snapshot.pair_count, snapshot.judgment_count) == (40, 80)
    assert snapshot.progress_done == snapshot.progress_total == 40
    seen = progress_log()
    # running with its total first, progress written while running (from the side connection,
    # so visible to others mid-export), ready last with the full count.
    assert seen[0] == ("running", 0, 40)
    assert any(status == "running" and 0 < done <= 40 for status, done, _ in seen[1:]), seen
    assert seen[-1] == ("ready", 40, 40)
    detail = client.get(f"/api/v1/snapshots/{snapshot.pk}/").json()
    assert detail["status"] == "ready" and detail["progress_done"] == 40 and detail["content_hash"] == snapshot.content_hash

    folder = Path(snapshot.artifact_dir)
    assert folder.name == snapshot.content_hash
    assert sorted(p.name for p in folder.iterdir()) == [
        "conversation_pairs.jsonl",
        "judgments.jsonl",
        "manifest.json",
        "pairs.jsonl",
        "preferences.jsonl",
        "preferences.parquet",
        "ranking_pairs.jsonl",
        "rankings.jsonl",
    ]
    assert not list(folder.parent.glob(".building-*")) and not list(folder.parent.glob(".probe-*"))
    download = client.get(f"/api/v1/snapshots/{snapshot.pk}/download?file=judgments")
    assert download.status_code == 200 and len(b"".join(download.streaming_content).splitlines()) == 80

    # The same judgments frozen synchronously in this process: the same content hash, so the
    # service hands back the job's snapshot instead of making another.
    again, created = snapshot_create(project=project, actor=site_admin, aggregation="majority")
    assert not created and again.pk == snapshot.pk and again.files == snapshot.files


def test_a_build_that_fails_half_way_is_marked_failed_and_leaves_no_files(
    judged,
    site_admin,
    start_worker,
    settings,
    tmp_path,  # noqa: F811
):
    """The artifacts folder is a 400 KiB tmpfs: the storage check before queueing passes (it
    needs 256 KiB), then the disk fills while the worker writes the raw judgments."""
    project = judged
    from feedback_site.annotation.models import Judgment

    Judgment.objects.filter(pair__project=project).update(rationale="x" * 8000)  # ~640 KB of raw judgments
    folder = tmp_path / "small"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("needs root with mount to make a small disk")
    try:
        settings.ARTIFACTS_DIR = folder
        snapshot = snapshot_start(project=project, actor=site_admin)
        worker = start_worker(queues="default")
        done = wait_for(
            lambda: Snapshot.objects.filter(pk=snapshot.pk, status__in=["ready", "failed"]).first(),
            timeout=120,
            worker=worker,
            what="the snapshot build to end",
        )
        assert done.status == "failed"
        assert "No space left on device" in done.error, done.error
        assert done.content_hash == "" and done.files == {} and done.artifact_dir == ""
        assert [p for p in folder.rglob("*") if p.is_file()] == []
        assert [p.name for p in (folder / "snapshots" / f"project-{project.pk}").iterdir()] == []
        # The page shows why.
        client = Client()
        client.force_login(site_admin)
        page = client.get(f"/projects/{project.pk}/snapshots/").content.decode()
        assert "Failed" in page and "No space left on device" in page
        # The job is idempotent: delivered again, a failed snapshot stays as it is.
        from feedback_site.snapshots.services import snapshot_build

        assert snapshot_build(snapshot.pk).status == "failed"
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_broker_down_is_a_503_and_records_nothing(judged, site_admin, monkeypatch):
    from workers.celery_app import app

    def forget_pools():
        # Only forget them: kombu's process-wide registry hands the same (open) pools back when
        # the real broker URL is used again, so they must not be closed here.
        app._pool = None
        app.amqp._producer_pool = None

    # Celery reads CELERY_BROKER_URL from the environment first; nothing listens on port 1.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    forget_pools()
    try:
        answer = _api(site_admin).post(f"/api/v1/projects/{judged.pk}/snapshots/", data=json.dumps({}), content_type="application/json")
    finally:
        monkeypatch.undo()
        forget_pools()
    assert answer.status_code == 503, answer.content
    assert answer.json()["error"] == "queue_unavailable" and "nothing was started" in answer.json()["detail"]
    assert not Snapshot.objects.filter(project=judged).exists()
