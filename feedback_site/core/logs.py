"""Structured logs: one JSON object per line, carrying the Celery task and run a line belongs to.

`settings.LOGGING` attaches `ContextFilter` to the console handler and picks `JsonFormatter` when
LOG_FORMAT=json (the production default). Every record then has:

    ts, level, logger, message, process    always
    task_id, task_name                    inside a Celery task (the task's request)
    run_id, run_kind                      inside a training / generation task (its run id
                                          argument), or wherever `log_context(run_id=...)` is open
    exc_info                              the formatted traceback, if any

so `jq 'select(.run_id == 42)'` over the worker logs gives one run's whole story, across retries
(a redelivered task keeps its task id) and workers.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from workers.task_names import RUN_KINDS

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "feedback_log_context",
    default={},  # noqa: B039 - never mutated: log_context sets a new dict
)

_FIELDS = ("task_id", "task_name", "run_id", "run_kind")


@contextlib.contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Add fields (e.g. run_id=42, run_kind="training") to every record logged inside the block."""
    token = _context.set({**_context.get(), **values})
    try:
        yield
    finally:
        _context.reset(token)


def _current_task_fields() -> dict[str, Any]:
    try:
        from celery import current_task
    except ImportError:  # pragma: no cover - celery is a dependency
        return {}
    task = current_task._get_current_object()
    if task is None:
        return {}
    request = getattr(task, "request", None)
    task_id = getattr(request, "id", None)
    if not task_id:
        return {}
    fields: dict[str, Any] = {"task_id": task_id, "task_name": task.name}
    kind = RUN_KINDS.get(task.name)
    if kind is not None:
        kwargs = getattr(request, "kwargs", None) or {}
        args = getattr(request, "args", None) or ()
        run_id = kwargs.get("run_id", args[0] if args else None)
        if run_id is not None:
            fields.update(run_id=run_id, run_kind=kind)
    return fields


class ContextFilter(logging.Filter):
    """Copies the current Celery task and `log_context` fields onto each record (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = {**_current_task_fields(), **_context.get()}
        for name in _FIELDS:
            if not hasattr(record, name):
                setattr(record, name, fields.get(name))
        for name, value in fields.items():
            if name not in _FIELDS and not hasattr(record, name):
                setattr(record, name, value)
        record.log_context_keys = tuple(fields)  # which extra fields to print
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; context fields that are unset are left out."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for name in (*_FIELDS, *getattr(record, "log_context_keys", ())):
            value = getattr(record, name, None)
            if value is not None:
                payload[name] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)
