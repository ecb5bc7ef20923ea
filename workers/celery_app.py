"""The Celery application, configured from Django settings (CELERY_* names).

Every task is declared once in `workers.task_names` (name, queue, limits, retries) and registered
here with `@task(SPEC)`; the routes are derived from those specs. All tasks acknowledge late and are
idempotent (set once, app-wide), so a worker that dies mid-task has its task redelivered and resumed
rather than lost.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import django
from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedback_site.settings")
django.setup()

from django.conf import settings  # noqa: E402  (needs django.setup first)
from django.db import InterfaceError, OperationalError  # noqa: E402

from workers.task_names import ROUTES, TRAINING_REQUEUE_STALE, TaskSpec  # noqa: E402

if settings.CELERY_BROKER_URL.startswith("filesystem"):
    for sub in ("out", "processed", "control"):
        (settings.CELERY_BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)

app = Celery(
    "feedback",
    include=[
        "workers.tasks",
        "workers.quality_tasks",
        "workers.evaluation_tasks",
        "workers.playground_tasks",
        "workers.conversation_tasks",
        "workers.loop_tasks",
        "workers.snapshot_tasks",
    ],
)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_routes=ROUTES,
    task_default_queue="default",
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    # Publishing is done from web requests: fail fast and say so instead of hanging the request.
    task_publish_retry=False,
    broker_connection_timeout=3,
    # Run with `celery beat` (or `worker -B` on a laptop): finds training runs whose worker died.
    beat_schedule={"requeue-stale-training": {"task": TRAINING_REQUEUE_STALE.name, "schedule": 60.0}},
)


@worker_ready.connect
def _recover_lost_runs(sender=None, **kwargs) -> None:
    """A worker that starts after a crash picks lost runs up at once instead of waiting for beat."""
    sender.app.send_task(TRAINING_REQUEUE_STALE.name)


# A dropped database or broker connection; the only errors a task is retried for.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError)


def task(spec: TaskSpec, *, bind: bool = False) -> Callable[[Callable[..., Any]], Any]:
    """Register a function as the task `spec` describes, and under each of its old names."""

    def register(function: Callable[..., Any]) -> Any:
        options: dict[str, Any] = {"bind": bind}
        if spec.soft_time_limit is not None:
            options["soft_time_limit"] = spec.soft_time_limit
        if spec.time_limit is not None:
            options["time_limit"] = spec.time_limit
        if spec.retries:
            options.update(autoretry_for=TRANSIENT_ERRORS, max_retries=spec.retries, retry_backoff=True, retry_jitter=True)
        for alias in spec.aliases:
            app.task(name=alias, **options)(function)
        return app.task(name=spec.name, **options)(function)

    return register
