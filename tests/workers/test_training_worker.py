"""Training end to end through Redis and real Celery worker processes: one version per run,
and a run whose worker is SIGKILLed resumes from its checkpoint to the same final step."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from feedback_site.projects.services import import_file, project_create
from feedback_site.registry.models import ModelKind, ModelVersion
from feedback_site.snapshots.services import snapshot_create
from feedback_site.training.models import TrainingMetric, TrainingRun, TrainingStatus
from feedback_site.training.services import training_launch
from tests.workers.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FINAL_STEP = 120
TERMINAL = [TrainingStatus.SUCCEEDED, TrainingStatus.FAILED, TrainingStatus.CANCELLED]


@pytest.fixture
def toy_snapshot(site_admin, tiny_policy):
    project = project_create(creator=site_admin, name="Toy", overlap=1, base_policy_uri=str(tiny_policy))
    lines = [
        {"prompt": f"Say something about {topic}.", "response_a": f"{topic} is great, thank you!",
         "response_b": f"{topic} whatever.", "preferred": "a"}
        for topic in ["cats", "dogs", "tea", "rain", "maps", "jazz", "code", "bread", "snow", "boats", "chess", "bees"]
    ]
    import_file(project=project, actor=site_admin, kind="pairs", filename="toy.jsonl",
                data="\n".join(json.dumps(line) for line in lines).encode())
    snapshot, _ = snapshot_create(project=project, actor=site_admin)
    return project, snapshot


def _finished(run_id):
    return TrainingRun.objects.filter(pk=run_id, status__in=TERMINAL).first()


def test_reward_training_through_a_worker_registers_one_reward_version(toy_snapshot, site_admin, start_worker):
    project, snapshot = toy_snapshot
    worker = start_worker()
    run, created = training_launch(project=project, actor=site_admin, method="reward", snapshot=snapshot,
                                   config={"max_steps": 6, "batch_size": 4, "max_length": 256, "save_steps": 3})
    assert created
    again, created_again = training_launch(project=project, actor=site_admin, method="reward", snapshot=snapshot,
                                           config={"max_steps": 6, "batch_size": 4, "max_length": 256, "save_steps": 3})
    assert not created_again and again.pk == run.pk
    done = wait_for(lambda: _finished(run.pk), timeout=300, worker=worker, what="the reward run")
    assert done.status == TrainingStatus.SUCCEEDED, f"{done.message}\n{done.log_tail}"
    version = done.output_version
    assert version.kind == ModelKind.REWARD and version.snapshot_id == snapshot.pk and version.parent == project.current_policy
    assert version.config_hash == done.config_hash and version.code_version
    manifest = json.loads((Path(version.artifact_uri) / "manifest.json").read_text())
    assert manifest["method"] == "reward" and manifest["final_step"] == 6
    assert TrainingMetric.objects.filter(run=done).exists()
    assert done.step == done.total_steps == 6
    assert ModelVersion.objects.filter(project=project, kind=ModelKind.REWARD).count() == 1


def _wait_for_checkpoint(run_id, worker, min_step):
    def ready():
        run = TrainingRun.objects.get(pk=run_id)
        if run.is_terminal:
            raise AssertionError(f"run ended ({run.status}) before it could be interrupted: {run.message}")
        folder = Path(os.environ["FEEDBACK_TEST_ARTIFACTS"]) / "training" / f"run-{run_id}"
        return run if run.step >= min_step and list(folder.glob("**/checkpoint-*")) else None

    return wait_for(ready, timeout=300, worker=worker, what=f"step {min_step} and a checkpoint")


@pytest.fixture
def dpo_config():
    # Long enough (a few steps a second on a tiny model) that the kill lands mid-run.
    return {"max_steps": FINAL_STEP, "batch_size": 2, "max_length": 256, "save_steps": 5, "learning_rate": 1e-4}


def test_killed_pool_process_is_redelivered_and_resumes_to_the_same_final_step(toy_snapshot, site_admin, start_worker, settings, monkeypatch, dpo_config):
    monkeypatch.setenv("FEEDBACK_TEST_ARTIFACTS", str(settings.ARTIFACTS_DIR))
    project, snapshot = toy_snapshot
    worker = start_worker()
    run, _ = training_launch(project=project, actor=site_admin, method="dpo", snapshot=snapshot, config=dpo_config)
    running = _wait_for_checkpoint(run.pk, worker, min_step=6)
    pid = int(running.claimed_by.rpartition(":")[2])
    os.kill(pid, signal.SIGKILL)  # the pool process that runs the task, mid-training
    done = wait_for(lambda: _finished(run.pk), timeout=300, worker=worker, what="the resumed run")
    assert done.status == TrainingStatus.SUCCEEDED, f"{done.message}\n{done.log_tail}"
    assert done.attempts == 2 and "resuming" in done.log_tail
    assert done.step == FINAL_STEP
    assert ModelVersion.objects.filter(project=project, kind=ModelKind.POLICY).exclude(number=0).count() == 1
    manifest = json.loads((Path(done.output_version.artifact_uri) / "manifest.json").read_text())
    assert manifest["final_step"] == FINAL_STEP


def test_killed_worker_is_recovered_by_the_next_worker(toy_snapshot, site_admin, start_worker, settings, monkeypatch, dpo_config):
    """The whole worker dies (no parent left to requeue): the next worker to start finds the
    run's heartbeat stale and sends it again."""
    monkeypatch.setenv("FEEDBACK_TEST_ARTIFACTS", str(settings.ARTIFACTS_DIR))
    project, snapshot = toy_snapshot
    first = start_worker(name="first")
    run, _ = training_launch(project=project, actor=site_admin, method="dpo", snapshot=snapshot, config=dpo_config)
    _wait_for_checkpoint(run.pk, first, min_step=6)
    first.kill(signal.SIGKILL)
    monkeypatch.setenv("FEEDBACK_HEARTBEAT_STALE_SECONDS", "3")
    import time

    time.sleep(4)
    second = start_worker(name="second")
    done = wait_for(lambda: _finished(run.pk), timeout=300, worker=second, what="the run recovered by the second worker")
    assert done.status == TrainingStatus.SUCCEEDED, f"{done.message}\n{done.log_tail}"
    assert done.attempts == 2 and done.step == FINAL_STEP
    assert ModelVersion.objects.filter(project=project, kind=ModelKind.POLICY).exclude(number=0).count() == 1
