"""Fault-injection fixtures: a private Redis server this test can kill and restart (the shared
one on 6379 is never touched), and a world with a project ready to annotate and train."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _free_port(preferred: int = 6390) -> int:
    for port in [preferred, *range(preferred + 1, preferred + 50)]:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port for a private redis-server")


class PrivateRedis:
    """A redis-server subprocess with an append-only file fsynced on every write, so a SIGKILL
    behaves like a crash of a production Redis that has persistence turned on."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.folder),
                "--daemonize",
                "no",
            ],
            stdout=(self.folder / "redis.log").open("a"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not start: {(self.folder / 'redis.log').read_text()}")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_connect_timeout=1)

    def messages(self, queue: str) -> list[dict]:
        """The task messages waiting in a Celery queue (kombu's Redis transport keeps a list per queue)."""
        return [json.loads(raw) for raw in self.client().lrange(queue, 0, -1)]


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def broker_on(private_redis, monkeypatch):
    """Point this process's Celery app at the private Redis for the test, then back. (Celery reads
    CELERY_BROKER_URL from the environment before its own settings, so that is what is changed.)"""
    from workers.celery_app import app

    def reset_pools():
        if app._pool is not None:
            app._pool.force_close_all()
        app._pool = None
        app.amqp._producer_pool = None

    monkeypatch.setenv("CELERY_BROKER_URL", private_redis.url)
    reset_pools()
    assert app.connection_for_write().as_uri().endswith(f":{private_redis.port}/0")
    yield private_redis
    monkeypatch.undo()
    reset_pools()
