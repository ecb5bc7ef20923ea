"""Every write to training runs: launch (validated before queueing), the worker's claim,
progress and heartbeat, completion (registers exactly one version), failure and cancel."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from feedback_site.core.errors import Conflict, Invalid, NotFound
from feedback_site.core.queue import enqueue
from feedback_site.demonstrations.models import DemonstrationSnapshot
from feedback_site.projects.models import Project
from feedback_site.projects.permissions import STAFF_ROLES, require_role
from feedback_site.ratings.models import RatingSnapshot
from feedback_site.registry.models import ModelKind, ModelVersion, VersionStatus
from feedback_site.registry.services import version_register
from feedback_site.snapshots.models import Snapshot
from feedback_site.training.models import (
    NEEDS_DEMONSTRATIONS,
    NEEDS_REWARD_MODEL,
    TAKES_RATINGS,
    Method,
    TrainingMetric,
    TrainingRun,
    TrainingStatus,
)
from workers.task_names import TRAINING_RUN

LOG_TAIL_CHARS = 12_000
# A worker that has not touched its run for this long is taken to be dead; a redelivered task
# then takes the run over and resumes it from its last checkpoint.
HEARTBEAT_STALE_AFTER = timedelta(seconds=settings.HEARTBEAT_STALE_SECONDS)


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_is_dead(claimed_by: str) -> bool:
    """True when the claiming process ran on this host and no longer exists. (A claim from
    another host can only be judged by its heartbeat.)"""
    host, _, pid = claimed_by.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def validate_training_config(method: str, config: dict | None) -> dict:
    """The full config (defaults filled in) or Invalid naming the bad field. Runs in the web
    process: rlhf's config module imports no torch."""
    return training_config(method, config).to_dict()


def training_config(method: str, config: dict | None):
    """The method's config dataclass (`rlhf.training`), or Invalid naming the bad field."""
    if method not in Method.values:
        raise Invalid(f"method must be one of {', '.join(Method.values)}; got {method!r}", code="bad_method")
    if config is not None and not isinstance(config, dict):
        raise Invalid("config must be a JSON object", code="bad_config")
    from rlhf.training import config_from_dict

    try:
        # The reward model is a version picked on the form; the service checks it right after.
        parsed = config_from_dict(method, dict(config or {}), check_reward_model=False)
    except (ValueError, TypeError) as error:
        raise Invalid(f"config: {error}", code="bad_config") from None
    return parsed


def _hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _check_training_data(
    method: str,
    project: Project,
    snapshot: Snapshot | None,
    demonstration_snapshot: DemonstrationSnapshot | None,
    rating_snapshot: RatingSnapshot | None = None,
) -> str:
    """The content hash of what `method` trains on, or Invalid naming the field that is wrong:
    SFT reads a demonstration snapshot, KTO a rating snapshot or a preference snapshot, every
    other method a ready preference snapshot."""
    if rating_snapshot is not None:
        if method not in TAKES_RATINGS:
            raise Invalid(
                f"rating_snapshot: {method} does not train on thumbs up / down ratings; only {', '.join(sorted(TAKES_RATINGS))} does",
                code="bad_rating_snapshot",
            )
        if snapshot is not None or demonstration_snapshot is not None:
            raise Invalid("rating_snapshot: give one kind of training data, not two", code="bad_rating_snapshot")
        if rating_snapshot.project_id != project.pk:
            raise Invalid("rating_snapshot: the rating snapshot belongs to another project", code="bad_rating_snapshot")
        return rating_snapshot.content_hash
    if method in NEEDS_DEMONSTRATIONS:
        if snapshot is not None:
            raise Invalid(
                f"snapshot: {method} trains on demonstrations, not on a preference snapshot; give a demonstration_snapshot instead",
                code="bad_snapshot",
            )
        if demonstration_snapshot is None:
            raise Invalid(
                f"demonstration_snapshot: {method} needs a demonstration snapshot to train on", code="missing_demonstration_snapshot"
            )
        if demonstration_snapshot.project_id != project.pk:
            raise Invalid(
                "demonstration_snapshot: the demonstration snapshot belongs to another project", code="bad_demonstration_snapshot"
            )
        return demonstration_snapshot.content_hash
    if demonstration_snapshot is not None:
        raise Invalid(
            f"demonstration_snapshot: {method} trains on preference pairs; a demonstration snapshot is only for sft",
            code="bad_demonstration_snapshot",
        )
    if snapshot is None:
        also = " or a rating snapshot (rating_snapshot)" if method in TAKES_RATINGS else ""
        raise Invalid(f"snapshot: {method} needs a preference snapshot{also} to train on", code="missing_snapshot")
    if snapshot.project_id != project.pk:
        raise Invalid("the snapshot belongs to another project", code="bad_snapshot")
    if not snapshot.is_ready:
        # A snapshot still building (or failed) has no files to train on yet.
        raise Invalid(f"snapshot {snapshot.number} is {snapshot.status}, not ready", code="bad_snapshot")
    return snapshot.content_hash


def training_launch(
    *,
    project: Project,
    actor,
    method: str,
    snapshot: Snapshot | None = None,
    demonstration_snapshot: DemonstrationSnapshot | None = None,
    rating_snapshot: RatingSnapshot | None = None,
    parent: ModelVersion | None = None,
    reward_model: ModelVersion | None = None,
    config: dict | None = None,
) -> tuple[TrainingRun, bool]:
    """Returns (run, created). Launching exactly what is already queued or running returns that
    run instead of a second one. `sft` takes `demonstration_snapshot`; `kto` takes
    `rating_snapshot` or `snapshot`; the other methods take `snapshot`."""
    require_role(actor, project, STAFF_ROLES)
    parsed = training_config(method, config)
    full_config = parsed.to_dict()
    data_hash = _check_training_data(method, project, snapshot, demonstration_snapshot, rating_snapshot)
    parent = parent or project.current_policy
    if parent is None or parent.project_id != project.pk or parent.kind != ModelKind.POLICY:
        raise Invalid("parent must be a policy version of this project", code="bad_parent")
    if method in NEEDS_REWARD_MODEL:
        if reward_model is None:
            raise Invalid(f"{method} needs a reward-model version to score its samples", code="missing_reward_model")
        if reward_model.project_id != project.pk or reward_model.kind != ModelKind.REWARD:
            raise Invalid("reward_model must be a reward-model version of this project", code="bad_reward_model")
    elif reward_model is not None:
        raise Invalid(f"{method} does not use a reward model", code="bad_reward_model")

    # The dataclass's own hash: the one the artifact's manifest.json carries, and the version's.
    config_hash = parsed.config_hash()
    # The data enters the key by its content hash (preferences, demonstrations or ratings); the
    # method is in the key too, so two kinds of snapshot can never stand for each other.
    launch_key = _hash([method, data_hash, parent.pk, reward_model.pk if reward_model else None, config_hash])
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                project=project,
                method=method,
                snapshot=snapshot,
                demonstration_snapshot=demonstration_snapshot,
                rating_snapshot=rating_snapshot,
                parent=parent,
                reward_model=reward_model,
                config=full_config,
                config_hash=config_hash,
                launch_key=launch_key,
                created_by=actor,
            )
    except IntegrityError:
        existing = TrainingRun.objects.filter(launch_key=launch_key, status__in=[TrainingStatus.QUEUED, TrainingStatus.RUNNING]).first()
        if existing is None:  # it finished between our insert and this read; launching again is fine
            return training_launch(
                project=project,
                actor=actor,
                method=method,
                snapshot=snapshot,
                demonstration_snapshot=demonstration_snapshot,
                rating_snapshot=rating_snapshot,
                parent=parent,
                reward_model=reward_model,
                config=config,
            )
        return existing, False
    try:
        enqueue(TRAINING_RUN, run.pk)
    except Exception as error:
        training_fail(run_id=run.pk, message=str(getattr(error, "message", error)))
        raise
    return run, True


def training_claim(*, run_id: int, now=None) -> TrainingRun | None:
    """A worker starts (or, after a crash, resumes) a run. None: nothing to do, either because
    the run is finished or because another live worker is on it."""
    now = now or timezone.now()
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.is_terminal:
            return None
        if run.cancel_requested:
            _finish(run, TrainingStatus.CANCELLED, "Cancelled before it started." if run.status == TrainingStatus.QUEUED else "Cancelled.")
            return None
        if (
            run.status == TrainingStatus.RUNNING
            and run.heartbeat_at
            and now - run.heartbeat_at < HEARTBEAT_STALE_AFTER
            and not _process_is_dead(run.claimed_by)
        ):
            return None
        resumed = run.status == TrainingStatus.RUNNING
        run.status = TrainingStatus.RUNNING
        run.attempts += 1
        run.heartbeat_at = now
        run.claimed_by = this_process()
        run.started_at = run.started_at or now
        stamp = now.strftime("%H:%M:%S")
        line = f"{stamp} attempt {run.attempts}: " + ("worker lost; resuming from the last checkpoint" if resumed else "started")
        run.log_tail = (run.log_tail + line + "\n")[-LOG_TAIL_CHARS:]
        run.save(update_fields=["status", "attempts", "heartbeat_at", "claimed_by", "started_at", "log_tail"])
        return run


def training_heartbeat(*, run_id: int) -> None:
    TrainingRun.objects.filter(pk=run_id, status=TrainingStatus.RUNNING).update(heartbeat_at=timezone.now())


def training_report(*, run_id: int, step: int, total: int, metrics: dict, eta_seconds: float | None) -> None:
    clean = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and v == v and abs(v) != float("inf")}
    with transaction.atomic():
        TrainingRun.objects.filter(pk=run_id).update(
            step=step, total_steps=total, latest_metrics=clean, eta_seconds=eta_seconds, heartbeat_at=timezone.now()
        )
        TrainingMetric.objects.create(run_id=run_id, step=step, values=clean)


def training_log(*, run_id: int, line: str) -> None:
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().only("log_tail").get(pk=run_id)
        run.log_tail = (run.log_tail + f"{timezone.now():%H:%M:%S} {line}\n")[-LOG_TAIL_CHARS:]
        run.save(update_fields=["log_tail"])


def training_cancel_requested(*, run_id: int) -> bool:
    return TrainingRun.objects.filter(pk=run_id, cancel_requested=True).exists()


def _finish(run: TrainingRun, status: str, message: str) -> None:
    run.status, run.message, run.finished_at = status, message[:4000], timezone.now()
    run.save(update_fields=["status", "message", "finished_at"])


def training_succeed(*, run_id: int, artifact_dir: str, metrics: dict, code_version: str, base_model: str) -> ModelVersion:
    """Register the run's output as a new draft version. Idempotent: a run registers one version."""
    with transaction.atomic():
        # Lock the run row alone: its snapshot and demonstration snapshot are nullable (outer
        # joins), which PostgreSQL cannot lock FOR UPDATE.
        run = (
            TrainingRun.objects.select_for_update(of=("self",))
            .select_related("parent", "snapshot", "demonstration_snapshot", "project")
            .get(pk=run_id)
        )
        if run.output_version_id is not None:
            return run.output_version
        if run.status != TrainingStatus.RUNNING:
            raise Conflict(f"run {run_id} is {run.status}; its output is not registered", code="not_running")
        kind = ModelKind.REWARD if run.method == Method.REWARD else ModelKind.POLICY
        version = version_register(
            project=run.project,
            kind=kind,
            name=f"{run.get_method_display()} of {run.parent.name} on {run.data_label}",
            artifact_uri=artifact_dir,
            base_model=base_model,
            parent=run.parent,
            snapshot=run.snapshot,  # None for SFT: the demonstration snapshot is found through the run
            config_hash=run.config_hash,
            code_version=code_version,
            metrics={**metrics, "training_run": run.pk, "method": run.method},
            status=VersionStatus.DRAFT,
            created_by=run.created_by,
        )
        run.output_version = version
        run.step = max(run.step, run.total_steps)
        run.save(update_fields=["output_version", "step"])
        _finish(run, TrainingStatus.SUCCEEDED, f"Registered {version}.")
        return version


def training_fail(*, run_id: int, message: str, cancelled: bool = False) -> None:
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.is_terminal:
            return
        _finish(run, TrainingStatus.CANCELLED if cancelled else TrainingStatus.FAILED, message)


def training_cancel(*, run: TrainingRun, actor) -> TrainingRun:
    require_role(actor, run.project_id, STAFF_ROLES)
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if run.is_terminal:
            raise Conflict(f"This run already {run.status}.", code="finished")
        run.cancel_requested = True
        run.save(update_fields=["cancel_requested"])
        if run.status == TrainingStatus.QUEUED:
            _finish(run, TrainingStatus.CANCELLED, "Cancelled before it started.")
        return run


def training_get(*, run_id: int, actor) -> TrainingRun:
    run = (
        TrainingRun.objects.select_related("project", "snapshot", "demonstration_snapshot", "parent", "reward_model", "output_version")
        .filter(pk=run_id)
        .first()
    )
    if run is None:
        raise NotFound("No such training run.")
    require_role(actor, run.project_id, STAFF_ROLES)
    return run


def training_requeue_stale(*, now=None) -> list[int]:
    """Re-send runs whose worker died without the broker redelivering their task (a whole
    worker machine lost, or a message acknowledged by a duplicate delivery). Safe to call
    often: a duplicate task for a live run is dropped by `training_claim`."""
    now = now or timezone.now()
    stale = list(
        TrainingRun.objects.filter(status=TrainingStatus.RUNNING, heartbeat_at__lt=now - HEARTBEAT_STALE_AFTER).values_list("pk", flat=True)
    )
    for run_id in stale:
        enqueue(TRAINING_RUN, run_id)
    return stale
