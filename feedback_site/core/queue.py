"""Sending work to Celery from the web process without importing the tasks (or torch).

Tasks are addressed by name; routing to the `gpu`/`default` queues is the Celery app's job.
"""

from __future__ import annotations

import logging

from feedback_site.core.errors import QueueUnavailable

log = logging.getLogger(__name__)


def enqueue(task_name: str, *args) -> str:
    from workers.celery_app import app

    try:
        result = app.send_task(task_name, args=list(args))
    except Exception as error:  # kombu raises several types for "broker down"; all mean the same here
        log.warning("could not enqueue %s%r: %s", task_name, args, error)
        raise QueueUnavailable(
            f"The task queue is unavailable ({error.__class__.__name__}); nothing was started. Try again shortly."
        ) from error
    return result.id
