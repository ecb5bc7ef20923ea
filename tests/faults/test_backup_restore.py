"""Backup and restore end to end: scripts/backup.sh (pg_dump + tar of the artifact folder), then
scripts/restore.sh into a fresh database and a fresh folder; the restored copy serves the project
and its snapshot and model version still verify by content hash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

# pg_dump and pg_restore: the backup scripts are for the PostgreSQL deployment (SQLite is one file).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres_only]
REPO = Path(__file__).resolve().parents[2]


def _url(db: dict, name: str | None = None) -> str:
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{name or db['NAME']}"


@pytest.fixture
def restored_db(settings):
    db = settings.DATABASES["default"]
    name = f"{db['NAME']}_restore_{os.getpid()}"
    server = _url(db, "postgres")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    yield _url(db, name)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def project_with_snapshot(settings, site_admin):
    from feedback_site.annotation.imports import import_file
    from feedback_site.registry.services import project_create
    from feedback_site.snapshots.services import snapshot_create
    from rlhf.models import make_tiny_model

    base = make_tiny_model(Path(settings.ARTIFACTS_DIR) / "models" / "base", seed=0)
    project = project_create(creator=site_admin, name="Backed up", base_policy_uri=str(base))
    lines = [{"prompt": f"Q{i}?", "response_a": f"good {i}", "response_b": f"bad {i}", "preferred": "a"} for i in range(5)]
    import_file(project=project, actor=site_admin, kind="pairs", filename="l.jsonl", data="\n".join(json.dumps(x) for x in lines).encode())
    snapshot, _ = snapshot_create(project=project, actor=site_admin)
    return project, snapshot


PROBE = r"""
import json, sys
import django
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
from django.contrib.auth import get_user_model
from feedback_site.projects.models import Project
from feedback_site.registry.services import version_artifact_path
from feedback_site.snapshots.models import Snapshot
from feedback_site.snapshots.services import snapshot_file

project = Project.objects.get(name="Backed up")
client = Client()
client.force_login(get_user_model().objects.get(username="siteadmin"))
snapshot = Snapshot.objects.get(project=project)
path, _ = snapshot_file(snapshot, "jsonl")
print(json.dumps({
    "page": client.get(f"/projects/{project.pk}/").status_code,
    "snapshots_page": client.get(f"/projects/{project.pk}/snapshots/").status_code,
    "download": client.get(f"/api/v1/snapshots/{snapshot.pk}/download?file=jsonl").status_code,
    "snapshot_path": str(path),
    "content_hash": snapshot.content_hash,
    "version_path": str(version_artifact_path(project.current_policy)),
    "pairs": project.pairs.count() if hasattr(project, "pairs") else None,
}))
"""


def test_backup_then_restore_into_a_fresh_database_and_folder(project_with_snapshot, settings, restored_db, tmp_path):
    project, snapshot = project_with_snapshot
    source_artifacts = Path(settings.ARTIFACTS_DIR).resolve()
    env = {
        **os.environ,
        "DATABASE_URL": _url(settings.DATABASES["default"]),
        "FEEDBACK_ARTIFACTS_DIR": str(source_artifacts),
        "PYTHON": sys.executable,
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    backup = tmp_path / "backup"
    done = subprocess.run(["bash", "scripts/backup.sh", str(backup)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in backup.iterdir()} == {"database.dump", "artifacts.tar.gz", "backup.env", "SHA256SUMS"}

    target = tmp_path / "restored-artifacts"
    done = subprocess.run(
        ["bash", "scripts/restore.sh", str(backup), restored_db, str(target)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 snapshot(s) and 1 model version(s) verified" in done.stdout

    # The restored copy, on its own database and folder, serves the project; its files verify.
    restored_env = {**env, "DATABASE_URL": restored_db, "FEEDBACK_ARTIFACTS_DIR": str(target)}
    probe = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**restored_env, "DJANGO_SETTINGS_MODULE": "feedback_site.settings"},
    )
    assert probe.returncode == 0, probe.stderr
    answer = json.loads(probe.stdout.strip().splitlines()[-1])
    assert answer["page"] == 200 and answer["snapshots_page"] == 200 and answer["download"] == 200
    assert answer["content_hash"] == snapshot.content_hash
    assert answer["snapshot_path"].startswith(str(target.resolve())) and answer["version_path"].startswith(str(target.resolve()))

    # The original is untouched, and a tampered restored file is caught.
    from feedback_site.snapshots.services import snapshot_file

    assert str(snapshot_file(snapshot, "jsonl")[0]).startswith(str(source_artifacts))
    restored_file = Path(answer["snapshot_path"])
    restored_file.write_text(restored_file.read_text().replace("good", "evil"))
    check = subprocess.run(
        [sys.executable, "manage.py", "check_artifacts"], cwd=REPO, env=restored_env, capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 1 and "does not match its recorded hash" in check.stderr

    # restore.sh never overwrites: the same database again is refused.
    again = subprocess.run(
        ["bash", "scripts/restore.sh", str(backup), restored_db, str(tmp_path / "other")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2 and "already exists" in again.stderr


def test_a_corrupted_backup_is_refused(project_with_snapshot, settings, restored_db, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": _url(settings.DATABASES["default"]),
        "FEEDBACK_ARTIFACTS_DIR": str(Path(settings.ARTIFACTS_DIR).resolve()),
    }
    backup = tmp_path / "backup"
    assert subprocess.run(["bash", "scripts/backup.sh", str(backup)], cwd=REPO, env=env, capture_output=True).returncode == 0
    with (backup / "artifacts.tar.gz").open("r+b") as handle:
        handle.seek(100)
        handle.write(b"\0\0\0\0")
    done = subprocess.run(
        ["bash", "scripts/restore.sh", str(backup), restored_db, str(tmp_path / "r")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "fails its SHA256SUMS" in done.stderr
    with psycopg.connect(_url(settings.DATABASES["default"], "postgres"), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [restored_db.rsplit("/", 1)[1]]).fetchone()[0] == 0
