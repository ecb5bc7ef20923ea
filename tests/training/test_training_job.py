"""The training job in-process (no broker): failure and cancel leave no version, and the
launch rules (validation, reward model, duplicates) hold."""

from __future__ import annotations

import json

import pytest

from feedback_site.annotation.imports import import_file
from feedback_site.core.errors import Invalid
from feedback_site.registry.models import ModelVersion
from feedback_site.registry.services import project_create
from feedback_site.snapshots.services import snapshot_create
from feedback_site.training import services
from feedback_site.training.models import TrainingRun, TrainingStatus
from workers import training_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny_policy(tmp_path_factory):
    from rlhf.models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture
def setup(site_admin, tiny_policy, monkeypatch):
    monkeypatch.setattr(services, "enqueue", lambda *args, **options: "task-id")
    project = project_create(creator=site_admin, name="Toy", base_policy_uri=str(tiny_policy))
    lines = [{"prompt": f"Topic {i}?", "response_a": f"good answer {i}", "response_b": f"bad {i}", "preferred": "a"} for i in range(8)]
    import_file(project=project, actor=site_admin, kind="pairs", filename="t.jsonl", data="\n".join(json.dumps(x) for x in lines).encode())
    snapshot, _ = snapshot_create(project=project, actor=site_admin)
    return project, snapshot


def test_diverging_run_fails_with_an_actionable_message_and_registers_nothing(setup, site_admin):
    project, snapshot = setup
    run, _ = services.training_launch(
        project=project,
        actor=site_admin,
        method="dpo",
        snapshot=snapshot,
        config={"learning_rate": 1e38, "max_steps": 6, "batch_size": 4, "max_grad_norm": 0.0, "save_steps": 1, "max_length": 256},
    )
    training_job.run_training(run.pk)
    run.refresh_from_db()
    assert run.status == TrainingStatus.FAILED
    assert "loss became NaN" in run.message and "lower the learning rate" in run.message
    assert run.output_version is None and ModelVersion.objects.filter(project=project).count() == 1
    assert not (training_job.run_dir(run.pk) / "final").exists()


def test_cancel_requested_stops_the_run_and_keeps_a_checkpoint(setup, site_admin, monkeypatch):
    project, snapshot = setup
    run, _ = services.training_launch(
        project=project,
        actor=site_admin,
        method="dpo",
        snapshot=snapshot,
        config={"max_steps": 50, "batch_size": 2, "save_steps": 2, "max_length": 256},
    )
    real_report = services.training_report

    def report_then_cancel(*, run_id, step, **kwargs):
        real_report(run_id=run_id, step=step, **kwargs)
        if step >= 3:
            TrainingRun.objects.filter(pk=run_id).update(cancel_requested=True)

    monkeypatch.setattr(training_job, "CANCEL_POLL_SECONDS", 0.0)
    monkeypatch.setattr(training_job, "REPORT_SECONDS", 0.0)
    monkeypatch.setattr(training_job.services, "training_report", report_then_cancel)
    training_job.run_training(run.pk)
    run.refresh_from_db()
    assert run.status == TrainingStatus.CANCELLED and "checkpoint is kept" in run.message
    assert run.step < 50 and run.output_version is None
    assert list(training_job.run_dir(run.pk).glob("**/checkpoint-*"))


@pytest.mark.parametrize(
    "method, config, reward, phrase",
    [
        ("dpo", {"learning_rate": -1}, False, "learning_rate"),
        ("dpo", {"colour": "red"}, False, "colour"),
        ("magic", {}, False, "method must be one of"),
        ("sft", {}, False, "sft trains on demonstrations, not on a preference snapshot"),
        ("ppo", {}, False, "needs a reward-model version"),
    ],
)
def test_bad_launches_are_refused_before_queueing(setup, site_admin, method, config, reward, phrase):
    project, snapshot = setup
    with pytest.raises(Invalid, match=phrase):
        services.training_launch(project=project, actor=site_admin, method=method, snapshot=snapshot, config=config)
    assert TrainingRun.objects.count() == 0


def test_a_run_its_version_and_its_manifest_carry_one_config_hash(setup, site_admin):
    """One canonical hash (rlhf.config): the run's, the version's and the artifact manifest's are equal."""
    from pathlib import Path

    from rlhf.training import config_from_dict

    project, snapshot = setup
    config = {"max_steps": 2, "batch_size": 2, "max_length": 128, "beta": 1}
    run, _ = services.training_launch(project=project, actor=site_admin, method="dpo", snapshot=snapshot, config=config)
    # An int given for a float field is stored (and hashed) as that float: the canonical form.
    assert run.config["beta"] == 1.0 and isinstance(run.config["beta"], float)
    assert run.config_hash == config_from_dict("dpo", run.config).config_hash()
    training_job.run_training(run.pk)
    run.refresh_from_db()
    assert run.status == TrainingStatus.SUCCEEDED, run.message
    version = run.output_version
    manifest = json.loads((Path(version.artifact_uri) / "manifest.json").read_text())
    assert run.config_hash == version.config_hash == manifest["config_hash"]


def test_the_sites_methods_are_the_libraries():
    from feedback_site.training.models import NEEDS_REWARD_MODEL, Method
    from rlhf.training import METHODS, METHODS_NEEDING_REWARD

    assert set(Method.values) == set(METHODS)
    assert set(NEEDS_REWARD_MODEL) == set(METHODS_NEEDING_REWARD)


def test_kto_trains_on_a_preference_snapshot_and_registers_a_policy(setup, site_admin):
    """A pair snapshot feeds KTO as thumbs: each pair's chosen answer desirable, its rejected one undesirable."""
    from pathlib import Path

    project, snapshot = setup
    config = {"max_steps": 2, "batch_size": 4, "max_length": 128, "eval_fraction": 0.25}
    run, _ = services.training_launch(project=project, actor=site_admin, method="kto", snapshot=snapshot, config=config)
    training_job.run_training(run.pk)
    run.refresh_from_db()
    assert run.status == TrainingStatus.SUCCEEDED, run.message
    version = run.output_version
    assert version.kind == "policy" and version.parent_id == project.current_policy_id
    manifest = json.loads((Path(version.artifact_uri) / "manifest.json").read_text())
    assert manifest["method"] == "kto" and manifest["desirable_examples"] == manifest["undesirable_examples"] == 6
    assert run.config_hash == version.config_hash == manifest["config_hash"]
    assert version.metrics["method"] == "kto" and "rewards/margins" in version.metrics and "kl" in version.metrics
