"""PostgreSQL goes away under a running web process, and the web process recovers by itself.

Why terminating backends stands for a restart: the database server is shared with other work on
this machine, so the test cannot restart it. What a restart does to a connected client is close
every server-side backend with FATAL 57P01 "terminating connection due to administrator
command" and then accept new connections; `pg_terminate_backend` sends each backend exactly that
(a restart's shutdown phase), and the server accepts new connections at once (its start phase).
The web process cannot tell the two apart: its persistent connections (CONN_MAX_AGE) are dead
either way, and it must notice (CONN_HEALTH_CHECKS) and reconnect instead of answering 500 until
someone restarts it.

A real gunicorn serves the requests, with persistent connections so the terminated connection is
the one the next request would reuse.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from rest_framework.authtoken.models import Token

from tests.faults.conftest import _free_port

# Kills PostgreSQL backends under a live web process: there is no server to restart on SQLite.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres_only]
REPO = Path(__file__).resolve().parents[2]


def _dsn(db: dict) -> str:
    return f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def gunicorn(settings, tmp_path):
    db = settings.DATABASES["default"]
    port = _free_port(8790)
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DATABASE_CONN_MAX_AGE": "600",
        "FEEDBACK_ARTIFACTS_DIR": str(settings.ARTIFACTS_DIR),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    log = tmp_path / "gunicorn.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "feedback_site.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "1",
            "--timeout",
            "60",
        ],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{log.read_text()}")
        try:
            httpx.get(f"{base}/healthz", timeout=2)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        raise AssertionError(f"gunicorn did not answer:\n{log.read_text()}")
    yield base, process, log
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def _terminate_other_backends(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def _backends(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]


def test_web_process_recovers_after_its_database_connections_are_killed(gunicorn, settings, project, annotator, make_pairs):
    from django.db import connection

    base, process, log = gunicorn
    make_pairs(project, 3)
    headers = {"Authorization": f"Token {Token.objects.create(user=annotator).key}"}
    dsn = _dsn(settings.DATABASES["default"])
    connection.close()  # this test process's own connection must not be the one counted below

    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        assert client.get("/api/v1/projects/").status_code == 200
        assert client.get(f"/api/v1/projects/{project.pk}/my-progress").status_code == 200
        assert _backends(dsn) >= 1, "gunicorn should hold a persistent connection (CONN_MAX_AGE)"

        for round_ in range(2):
            assert _terminate_other_backends(dsn) >= 1
            # The very next requests succeed: the dead connection is noticed and replaced.
            for _ in range(3):
                response = client.get("/api/v1/projects/")
                assert response.status_code == 200, f"round {round_}: {response.status_code}\n{log.read_text()[-3000:]}"
            leased = client.post(f"/api/v1/projects/{project.pk}/assignments/next")
            assert leased.status_code == 200, leased.text
            submitted = client.post(
                f"/api/v1/assignments/{leased.json()['assignment_id']}/judgment", json={"choice": "left", "strength": "clear"}
            )
            assert submitted.status_code == 201, submitted.text

        # The queue's two calls skip Django's per-request health check (queue_pg._call): when
        # they are the first to meet a dead connection, they replace it and send the call again.
        leased = client.post(f"/api/v1/projects/{project.pk}/assignments/next")
        assert leased.status_code == 200, leased.text
        assert _terminate_other_backends(dsn) >= 1
        again = client.post(f"/api/v1/projects/{project.pk}/assignments/next")
        assert again.status_code == 200, again.text
        assert again.json()["assignment_id"] == leased.json()["assignment_id"], "the open lease is served again"
        assert _terminate_other_backends(dsn) >= 1
        submitted = client.post(f"/api/v1/assignments/{again.json()['assignment_id']}/judgment", json={"choice": "right"})
        assert submitted.status_code == 201, submitted.text
    assert process.poll() is None, "gunicorn must not have been restarted"
    assert "Internal Server Error" not in log.read_text()
