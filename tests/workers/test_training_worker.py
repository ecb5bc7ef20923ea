"""Training end to end through Redis and real Celery worker processes: one version per run,
a run whose worker is SIGKILLed resumes from its checkpoint to the same final step, and SFT on a
demonstration snapshot, launched through the API, does the same and registers a draft policy."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from feedback_site.annotation.imports import import_file
from feedback_site.registry.models import ModelKind, ModelVersion
from feedback_site.registry.services import project_create
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
        {
            "prompt": f"Say something about {topic}.",
            "response_a": f"{topic} is great, thank you!",
            "response_b": f"{topic} whatever.",
            "preferred": "a",
        }
        for topic in ["cats", "dogs", "tea", "rain", "maps", "jazz", "code", "bread", "snow", "boats", "chess", "bees"]
    ]
    import_file(
        project=project, actor=site_admin, kind="pairs", filename="toy.jsonl", data="\n".join(json.dumps(line) for line in lines).encode()
    )
    snapshot, _ = snapshot_create(project=project, actor=site_admin)
    return project, snapshot


def _finished(run_id):
    return TrainingRun.objects.filter(pk=run_id, status__in=TERMINAL).first()


def test_reward_training_through_a_worker_registers_one_reward_version(toy_snapshot, site_admin, start_worker):
    project, snapshot = toy_snapshot
    worker = start_worker()
    run, created = training_launch(
        project=project,
        actor=site_admin,
        method="reward",
        snapshot=snapshot,
        config={"max_steps": 6, "batch_size": 4, "max_length": 256, "save_steps": 3},
    )
    assert created
    again, created_again = training_launch(
        project=project,
        actor=site_admin,
        method="reward",
        snapshot=snapshot,
        config={"max_steps": 6, "batch_size": 4, "max_length": 256, "save_steps": 3},
    )
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


def test_killed_pool_process_is_redelivered_and_resumes_to_the_same_final_step(
    toy_snapshot, site_admin, start_worker, settings, monkeypatch, dpo_config
):
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


# ------------------------------------------------------------------------------------------------
# SFT on a demonstration snapshot, launched through the API
# ------------------------------------------------------------------------------------------------

SFT_FINAL_STEP = 300  # ~15 steps/s on the tiny model: long enough for the kill to land mid-run


@pytest.fixture
def toy_demonstrations(site_admin, tiny_policy, make_user, add_member):
    from tests.demonstrations.helpers import make_demonstration_snapshot, toy_items

    project = project_create(creator=site_admin, name="Toy SFT", overlap=1, base_policy_uri=str(tiny_policy))
    writer = make_user("writer")
    add_member(project, writer, "annotator")
    return project, make_demonstration_snapshot(project, staff=site_admin, annotator=writer, items=toy_items(16))


def test_sft_launched_through_the_api_survives_a_killed_worker_and_registers_one_draft_policy(
    toy_demonstrations, site_admin, start_worker, settings, monkeypatch, client
):
    monkeypatch.setenv("FEEDBACK_TEST_ARTIFACTS", str(settings.ARTIFACTS_DIR))
    project, demos = toy_demonstrations
    parent = project.current_policy
    worker = start_worker()
    client.force_login(site_admin)
    answer = client.post(
        f"/api/v1/projects/{project.pk}/training-runs/",
        {
            "method": "sft",
            "demonstration_snapshot_id": demos.pk,
            "config": {
                "max_steps": SFT_FINAL_STEP,
                "batch_size": 4,
                "max_length": 128,
                "save_steps": 10,
                "learning_rate": 1e-3,
                "eval_fraction": 0.25,
            },
        },
        content_type="application/json",
    )
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert (body["method"], body["snapshot_id"], body["demonstration_snapshot_id"], body["parent_id"]) == ("sft", None, demos.pk, parent.pk)

    running = _wait_for_checkpoint(body["id"], worker, min_step=10)
    os.kill(int(running.claimed_by.rpartition(":")[2]), signal.SIGKILL)  # the pool process, mid-training
    done = wait_for(lambda: _finished(body["id"]), timeout=300, worker=worker, what="the resumed SFT run")
    assert done.status == TrainingStatus.SUCCEEDED, f"{done.message}\n{done.log_tail}"
    assert done.attempts == 2 and "resuming" in done.log_tail and f"sft on demonstration snapshot {demos.number}" in done.log_tail
    assert done.step == done.total_steps == SFT_FINAL_STEP
    assert TrainingMetric.objects.filter(run=done, values__has_key="mean_token_accuracy").exists()  # SFTTrainer's progress

    version = done.output_version
    assert ModelVersion.objects.filter(project=project, kind=ModelKind.POLICY).exclude(pk=parent.pk).get() == version
    assert (version.kind, version.status, version.parent, version.snapshot) == (ModelKind.POLICY, "draft", parent, None)
    assert version.config_hash == done.config_hash and version.code_version
    metrics = version.metrics
    assert metrics["method"] == "sft" and metrics["training_run"] == done.pk
    assert metrics["eval_loss"] < metrics["eval_loss_before"], metrics  # it learned the demonstrations
    manifest = json.loads((Path(version.artifact_uri) / "manifest.json").read_text())
    assert manifest["method"] == "sft" and manifest["final_step"] == SFT_FINAL_STEP
    assert manifest["train_demonstrations"] + manifest["heldout_demonstrations"] == demos.demonstration_count
    assert client.get(f"/api/v1/training-runs/{done.pk}/").json()["output_version_id"] == version.pk
