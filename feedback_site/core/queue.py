"""Sending work to Celery from the web process without importing the tasks (or torch).

Services name a task by its spec (`workers.task_names`), never by a string, and call `enqueue`
where the work's rows are written. The message is sent when the enclosing transaction commits
(at once in autocommit): a worker never looks for a row that is not committed yet, and a
rolled-back transaction sends nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from django.db import transaction

from feedback_site.core.errors import QueueUnavailable
from workers.task_names import TaskSpec

log = logging.getLogger(__name__)


def enqueue(spec: TaskSpec, *args, on_failure: Callable[[QueueUnavailable], None] | None = None) -> str:
    """Send `spec` with `args` after commit; returns the Celery task id it will have.

    If the broker cannot be reached, `on_failure` (e.g. marking the run failed) is called and
    QueueUnavailable is raised: from this call in autocommit, or from the commit of the enclosing
    transaction, after its rows are stored.
    """

    task_id = str(uuid.uuid4())

    def send() -> None:
        try:
            send_now(spec, *args, task_id=task_id)
        except QueueUnavailable as error:
            if on_failure is not None:
                on_failure(error)
            raise

    if inside_transaction():
        transaction.on_commit(send)
    else:
        send()
    return task_id


def inside_transaction() -> bool:
    # The same test Django's on_commit makes; a separate function so that the test suite, whose
    # every test runs inside an atomic block that never commits, can leave that block out.
    return transaction.get_connection().in_atomic_block


def send_now(spec: TaskSpec, *args, countdown: float | None = None, task_id: str | None = None) -> str:
    from workers.celery_app import app

    try:
        result = app.send_task(spec.name, args=list(args), countdown=countdown, task_id=task_id)
    except Exception as error:  # kombu raises several types for "broker down"; all mean the same here
        log.warning("could not enqueue %s%r: %s", spec.name, args, error)
        raise QueueUnavailable(
            f"The task queue is unavailable ({error.__class__.__name__}); nothing was started. Try again shortly."
        ) from error
    return result.id
