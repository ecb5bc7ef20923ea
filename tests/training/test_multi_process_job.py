"""The training job with num_processes=2: the worker starts the run through `accelerate launch`
(two real processes, DDP over gloo on CPU), follows its progress and registers one version."""

from __future__ import annotations

import json

import pytest

from feedback_site.annotation.imports import import_file
from feedback_site.registry.models import ModelVersion
from feedback_site.registry.services import project_create
from feedback_site.snapshots.services import snapshot_create
from feedback_site.training import services
from feedback_site.training.models import TrainingMetric, TrainingRun, TrainingStatus
from workers import training_job

pytestmark = pytest.mark.django_db(transaction=True)  # the run's progress is written from a thread too


@pytest.fixture
def tiny_policy(tmp_path_factory):
    from rlhf.models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.mark.timeout(300)
def test_a_two_process_run_is_launched_followed_and_registered_once(site_admin, tiny_policy, monkeypatch):
    monkeypatch.setattr(services, "enqueue", lambda *args, **options: "task-id")  # run in this process instead
    monkeypatch.setenv("RLHF_DEVICE", "cpu")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    project = project_create(creator=site_admin, name="DDP", base_policy_uri=str(tiny_policy))
    lines = [{"prompt": f"Topic {i}?", "response_a": f"good answer {i}", "response_b": f"bad {i}", "preferred": "a"} for i in range(8)]
    import_file(project=project, actor=site_admin, kind="pairs", filename="t.jsonl", data="\n".join(json.dumps(x) for x in lines).encode())
    snapshot, _ = snapshot_create(project=project, actor=site_admin)
    run, _ = services.training_launch(
        project=project,
        actor=site_admin,
        method="reward",
        snapshot=snapshot,
        config={"max_steps": 3, "batch_size": 2, "num_processes": 2, "eval_fraction": 0.0, "learning_rate": 1e-3},
    )

    training_job.run_training(run.pk)

    run.refresh_from_db()
    assert run.status == TrainingStatus.SUCCEEDED, run.message
    assert "launching 2 processes (ddp) with accelerate" in run.log_tail
    assert run.step == run.total_steps == 3
    assert TrainingMetric.objects.filter(run=run, step=3).exists()
    version = run.output_version
    assert version is not None and ModelVersion.objects.filter(produced_by=run).count() == 1
    manifest = json.loads((training_job.run_dir(run.pk) / "final" / "manifest.json").read_text())
    assert manifest["config"]["num_processes"] == 2 and manifest["final_step"] == 3
    assert TrainingRun.objects.get(pk=run.pk).config["num_processes"] == 2
