"""Real Celery worker processes against the real Redis, for tests that go through the broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.backends import database_url

REPO = Path(__file__).resolve().parents[2]
TEST_BROKER = os.environ.get("CELERY_BROKER_URL", "")
if not TEST_BROKER.startswith("redis://"):
    TEST_BROKER = "redis://127.0.0.1:6379/15"


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory) -> Path:
    from rlhf.models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-policy") / "model", seed=0)


@pytest.fixture
def redis_broker():
    """Make sure this process's Celery app publishes to the test Redis database, emptied."""
    import redis

    from workers.celery_app import app

    client = redis.Redis.from_url(TEST_BROKER)
    client.flushdb()
    if app.conf.broker_url != TEST_BROKER:
        # `make test` sets CELERY_BROKER_URL, so this only happens in a hand-run pytest: drop the
        # pool built for the other broker so the next publish connects to the test Redis.
        app.conf.broker_url = TEST_BROKER
        app._pool = None
    yield TEST_BROKER
    client.flushdb()


class WorkerProcess:
    def __init__(self, process: subprocess.Popen, log: Path):
        self.process, self.log = process, log

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def start_worker(settings, redis_broker, tmp_path):
    """Starts `celery worker` subprocesses on the test database and broker; kills them after."""
    started: list[WorkerProcess] = []

    def start(queues: str = "default,gpu", name: str = "w1") -> WorkerProcess:
        db = settings.DATABASES["default"]
        env = {
            **os.environ,
            "DATABASE_URL": database_url(db),
            "CELERY_BROKER_URL": redis_broker,
            "FEEDBACK_ARTIFACTS_DIR": str(settings.ARTIFACTS_DIR),
            "PYTHONUNBUFFERED": "1",
        }
        log = tmp_path / f"worker-{name}.log"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.celery_app",
                "worker",
                "-Q",
                queues,
                "-n",
                f"{name}@%h",
                "--concurrency",
                "1",
                "--max-tasks-per-child",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            cwd=REPO,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = WorkerProcess(process, log)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill(signal.SIGTERM if worker.process.poll() is None else signal.SIGKILL)


def wait_for(predicate, timeout: float, worker: WorkerProcess | None = None, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None and worker.process.poll() is not None:
            raise AssertionError(f"worker exited with {worker.process.returncode} while waiting for {what}:\n{worker.output()[-4000:]}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f"\n{worker.output()[-4000:]}" if worker else ""))
