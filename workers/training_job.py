"""Runs one training run: claims it, trains through rlhf (which checkpoints and resumes by
itself), and registers exactly one version, or records why it could not.

A heartbeat thread keeps `heartbeat_at` fresh while the run is alive, even through a long
rollout or evaluation step, so a redelivered copy of the task can tell a live run (leave it)
from one whose worker died (take it over and resume from the last checkpoint).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from feedback_site.demonstrations.services import snapshot_file as demonstration_snapshot_file
from feedback_site.ratings.services import snapshot_file as rating_snapshot_file
from feedback_site.snapshots.services import snapshot_file
from feedback_site.training import services

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 10.0
REPORT_SECONDS = 2.0
CANCEL_POLL_SECONDS = 2.0


def data_file(run) -> Path:
    """The JSONL the run trains on, its hash checked: SFT reads the demonstration snapshot
    (`{"messages": [...]}` per line), KTO the rating snapshot when it has one (`{"prompt",
    "completion", "label"}` per line), every other method the preference snapshot."""
    if run.demonstration_snapshot_id is not None:
        return demonstration_snapshot_file(run.demonstration_snapshot)
    if run.rating_snapshot_id is not None:
        return rating_snapshot_file(run.rating_snapshot)
    path, _ = snapshot_file(run.snapshot, "jsonl")
    return path


def run_dir(run_id: int) -> Path:
    return Path(settings.ARTIFACTS_DIR) / "training" / f"run-{run_id}"


class _Heartbeat(threading.Thread):
    def __init__(self, run_id: int):
        super().__init__(daemon=True, name=f"heartbeat-{run_id}")
        self.run_id = run_id
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(HEARTBEAT_SECONDS):
                services.training_heartbeat(run_id=self.run_id)
        finally:
            connection.close()


class _DatabaseControl:
    """RunControl writing progress to the database every few seconds and polling for cancel."""

    def __init__(self, run_id: int):
        self.run_id = run_id
        self._started = time.monotonic()
        self._first_step: tuple[int, float] | None = None
        self._last_report = 0.0
        self._last_cancel_check = 0.0
        self._cancelled = False

    def report(self, step: int, total: int, metrics=None) -> None:
        now = time.monotonic()
        if self._first_step is None:
            self._first_step = (step, now)
        if now - self._last_report < REPORT_SECONDS and step < total:
            return
        self._last_report = now
        eta = None
        first_step, first_time = self._first_step
        if step > first_step and total:
            eta = (now - first_time) / (step - first_step) * (total - step)
        services.training_report(run_id=self.run_id, step=step, total=total, metrics=dict(metrics or {}), eta_seconds=eta)

    def log(self, message: str) -> None:
        services.training_log(run_id=self.run_id, line=message)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self._cancelled and now - self._last_cancel_check >= CANCEL_POLL_SECONDS:
            self._last_cancel_check = now
            self._cancelled = services.training_cancel_requested(run_id=self.run_id)
        return self._cancelled


def run_training(run_id: int) -> None:
    run = services.training_claim(run_id=run_id)
    if run is None:
        log.info("training run %s: nothing to do (finished, cancelled, or alive on another worker)", run_id)
        return
    import rlhf
    from feedback_site.registry.services import version_model_dir
    from rlhf.progress import RunCancelled
    from rlhf.training import train

    heartbeat = _Heartbeat(run_id)
    heartbeat.start()
    control = _DatabaseControl(run_id)
    try:
        data_path = data_file(run)
        base_path = version_model_dir(run.parent)
        reward_path = version_model_dir(run.reward_model) if run.reward_model else None
        control.log(f"{run.method} on {run.data_label} from {run.parent}")
        if int((run.config or {}).get("num_processes", 1)) > 1:
            # N devices: `accelerate launch` runs `python -m rlhf train` in N processes; progress
            # and cancel still go through `control`. One device: in this process, as always.
            from rlhf.training.launch import run_distributed

            result = run_distributed(run.method, data_path, base_path, run_dir(run_id), run.config, control, reward_model_path=reward_path)
        else:
            result = train(
                run.method,
                data_path=data_path,
                base_model_path=base_path,
                out_dir=run_dir(run_id),
                config=run.config,
                control=control,
                reward_model_path=reward_path,
            )
        services.training_succeed(
            run_id=run_id,
            artifact_dir=str(result.artifact_dir),
            metrics=dict(result.metrics),
            code_version=rlhf.__version__,
            base_model=run.parent.base_model,
        )
        _evaluate_after(run_id)
    except RunCancelled:
        services.training_fail(run_id=run_id, message="Cancelled by a user; the last checkpoint is kept.", cancelled=True)
    except Exception as error:
        log.exception("training run %s failed", run_id)
        services.training_fail(run_id=run_id, message=f"{error.__class__.__name__}: {error}")
    finally:
        heartbeat.stopped.set()


def _evaluate_after(run_id: int) -> None:
    """Queue the automatic evaluation of the version just registered (issue 4: evaluation after
    every training run). A failure to queue it is logged, never turned into a training failure."""
    try:
        from feedback_site.evaluation.services import evaluation_after_training

        evaluation_after_training(training_run_id=run_id)
    except Exception:
        log.exception("training run %s: could not queue its evaluation", run_id)
