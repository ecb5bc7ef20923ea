"""Progress reporting and cooperative cancellation shared by every long-running rlhf job.

A caller (a Celery task, the CLI, a test) passes a `RunControl`; the job calls `report()` after
each step and checks `should_stop()` between steps. Keeping this a tiny protocol means the
library never needs to know where progress goes (database row, terminal, list in a test).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class RunControl(Protocol):
    def report(self, step: int, total: int, metrics: dict[str, Any] | None = None) -> None:
        """Called after each unit of work. `metrics` holds floats keyed by metric name."""

    def log(self, message: str) -> None:
        """A human-readable line for the run's log tail."""

    def should_stop(self) -> bool:
        """True when the caller asked the job to stop at the next safe point."""


class RunCancelled(Exception):
    """Raised by a job that stopped because `should_stop()` said so (after saving a checkpoint)."""


@dataclass
class NullControl:
    """No-op control for callers that do not care about progress."""

    def report(self, step: int, total: int, metrics: dict[str, Any] | None = None) -> None:
        pass

    def log(self, message: str) -> None:
        pass

    def should_stop(self) -> bool:
        return False


@dataclass
class RecordingControl:
    """Keeps every report in memory; used by tests and the CLI."""

    echo: bool = False
    stop_after_step: int | None = None
    reports: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def report(self, step: int, total: int, metrics: dict[str, Any] | None = None) -> None:
        self.reports.append((step, total, dict(metrics or {})))
        if self.echo:
            shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in (metrics or {}).items())
            print(f"[{step}/{total}] {shown}", flush=True)

    def log(self, message: str) -> None:
        self.lines.append(message)
        if self.echo:
            print(message, flush=True)

    def should_stop(self) -> bool:
        return self.stop_after_step is not None and bool(self.reports) and self.reports[-1][0] >= self.stop_after_step


@dataclass
class ThrottledControl:
    """Forwards to `sink` at most every `interval_s` seconds (always the first and last step).

    Writing progress to a database on every token would dominate a fast job; people only need
    an update every few seconds.
    """

    sink: Callable[[int, int, dict[str, Any]], None]
    log_sink: Callable[[str], None] = lambda message: None
    stop_check: Callable[[], bool] = lambda: False
    interval_s: float = 2.0
    _last: float = field(default=0.0, init=False)

    def report(self, step: int, total: int, metrics: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        if step <= 1 or step >= total or now - self._last >= self.interval_s:
            self._last = now
            self.sink(step, total, dict(metrics or {}))

    def log(self, message: str) -> None:
        self.log_sink(message)

    def should_stop(self) -> bool:
        return self.stop_check()
