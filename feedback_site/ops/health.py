"""Operational status for staff: database, broker, workers, queue depths and active runs.

Each probe has a short timeout and reports its own failure instead of raising, so one down
component never hides the state of the others (nor hangs the page). `/healthz` stays a bare
`SELECT 1` (core/api.py `health`); these probes back `/api/v1/health/details` (ops/api.py) and the
ops page (ops/views.py). Nothing here imports torch: it runs in the web process.

The ops app is the top layer (docs/architecture.md): it reads every app's runs, so no app imports it.
"""

from __future__ import annotations

import os
import time
from typing import Any

from django.conf import settings
from django.db import connection

from feedback_site.generation.models import TERMINAL_STATUSES as GENERATION_TERMINAL
from feedback_site.generation.models import GenerationRun
from feedback_site.training.models import TERMINAL_STATUSES, TrainingRun

QUEUES = ("gpu", "default")  # workers/celery_app.py routes training/generation to gpu, the rest to default


def _ms(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 1)


def database_status() -> dict[str, Any]:
    start = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # noqa: BLE001 - any failure is the status
        return {"ok": False, "error": f"{error.__class__.__name__}: {error}", "latency_ms": _ms(start)}
    return {"ok": True, "vendor": connection.vendor, "latency_ms": _ms(start)}


def _redis_client():
    import redis

    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return None
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


def broker_status() -> dict[str, Any]:
    """Reachability of the Celery broker (Redis PING; other transports: a kombu connection)."""
    url = settings.CELERY_BROKER_URL
    transport = url.split("://", 1)[0]
    start = time.monotonic()
    try:
        client = _redis_client()
        if client is not None:
            client.ping()
        else:
            from kombu import Connection

            with Connection(url, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS) as conn:
                conn.ensure_connection(max_retries=1, timeout=1)
    except Exception as error:  # noqa: BLE001
        return {"ok": False, "transport": transport, "error": f"{error.__class__.__name__}: {error}", "latency_ms": _ms(start)}
    return {"ok": True, "transport": transport, "latency_ms": _ms(start)}


def _filesystem_depths() -> dict[str, int | None]:
    """The embedded broker (kombu's filesystem transport) keeps one `<ms>_<uuid>.<queue>.msg` file
    per waiting message in its data folder; counting them is the queue depth."""
    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in")
    if not folder:
        return {queue: None for queue in QUEUES}
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        names = []
    return {queue: sum(1 for name in names if name.endswith(f".{queue}.msg")) for queue in QUEUES}


def queue_depths() -> dict[str, int | None]:
    """Messages waiting in each queue (Redis LLEN of the queue's list, or the filesystem broker's
    message files); None when unknown."""
    try:
        if settings.CELERY_BROKER_URL.startswith("filesystem"):
            return _filesystem_depths()
        client = _redis_client()
        if client is None:
            return {queue: None for queue in QUEUES}
        return {queue: int(client.llen(queue)) for queue in QUEUES}
    except Exception:  # noqa: BLE001 - the broker status says why
        return {queue: None for queue in QUEUES}


def worker_status(timeout: float = 1.0) -> dict[str, Any]:
    """Workers that answered a broadcast ping within `timeout` seconds, and the queues they consume."""
    start = time.monotonic()
    try:
        from workers.celery_app import app

        # One broadcast, not a ping and then a second round: a worker that lists its queues is
        # alive, and each round waits the whole timeout for late replies.
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
        queues: dict[str, list[str]] = {name: sorted(q["name"] for q in active or []) for name, active in replies.items()}
    except Exception as error:  # noqa: BLE001
        return {"ok": False, "workers": [], "error": f"{error.__class__.__name__}: {error}", "latency_ms": _ms(start)}
    workers = [{"name": name, "queues": queues.get(name, [])} for name in sorted(replies)]
    served = {queue for worker in workers for queue in worker["queues"]}
    return {
        "ok": bool(workers),
        "workers": workers,
        "queues_without_worker": [queue for queue in QUEUES if workers and queue not in served],
        "latency_ms": _ms(start),
    }


def active_runs(limit: int = 50) -> list[dict[str, Any]]:
    """Training and generation runs that are queued or running, newest first."""
    runs: list[dict[str, Any]] = []
    for run in TrainingRun.objects.exclude(status__in=TERMINAL_STATUSES).select_related("project").order_by("-pk")[:limit]:
        runs.append(
            {
                "kind": "training",
                "id": run.pk,
                "project_id": run.project_id,
                "project": run.project.name,
                "method": run.method,
                "status": run.status,
                "step": run.step,
                "total_steps": run.total_steps,
            }
        )
    for run in GenerationRun.objects.exclude(status__in=GENERATION_TERMINAL).select_related("project").order_by("-pk")[:limit]:
        runs.append(
            {
                "kind": "generation",
                "id": run.pk,
                "project_id": run.project_id,
                "project": run.project.name,
                "method": "generate",
                "status": run.status,
                "step": None,
                "total_steps": None,
            }
        )
    return runs


def health_details(worker_timeout: float = 1.0) -> dict[str, Any]:
    database = database_status()
    broker = broker_status()
    workers = worker_status(worker_timeout) if broker["ok"] else {"ok": False, "workers": [], "error": "broker unreachable"}
    runs = active_runs() if database["ok"] else []
    return {
        "status": "ok" if database["ok"] and broker["ok"] and workers["ok"] else "degraded",
        "database": database,
        "broker": broker,
        "workers": workers,
        "queues": queue_depths() if broker["ok"] else {queue: None for queue in QUEUES},
        "active_runs": {"count": len(runs), "runs": runs},
    }
