"""The Celery application, configured from Django settings (CELERY_* names).

Routing: generation and training are GPU-shaped work and go to the `gpu` queue; everything else
goes to `default`. Long tasks acknowledge late and are idempotent, so a worker that dies mid-task
has its task redelivered and resumed rather than lost.
"""

from __future__ import annotations

import os

import django
from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedback_site.settings")
django.setup()

from django.conf import settings  # noqa: E402  (needs django.setup first)

if settings.CELERY_BROKER_URL.startswith("filesystem"):
    for sub in ("out", "processed", "control"):
        (settings.CELERY_BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)

app = Celery("feedback", include=["workers.tasks", "workers.quality_tasks", "workers.evaluation_tasks", "workers.playground_tasks", "workers.loop_tasks", "workers.snapshot_tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_routes={
        "generation.*": {"queue": "gpu"},
        "training.*": {"queue": "gpu"},
        # Interactive chat: its own worker keeps versions loaded (no max-tasks-per-child).
        "playground.*": {"queue": "playground"},
        "*": {"queue": "default"},
    },
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
    task_soft_time_limit=int(os.environ.get("CELERY_SOFT_TIME_LIMIT", 6 * 3600)),
    task_time_limit=int(os.environ.get("CELERY_TIME_LIMIT", 6 * 3600 + 300)),
    # Run with `celery beat` (or `worker -B` on a laptop): finds training runs whose worker died.
    beat_schedule={"requeue-stale-training": {"task": "default.requeue_stale_training", "schedule": 60.0}},
)


@worker_ready.connect
def _recover_lost_runs(sender=None, **kwargs) -> None:
    """A worker that starts after a crash picks lost runs up at once instead of waiting for beat."""
    sender.app.send_task("default.requeue_stale_training")
