"""Launching SFT on a demonstration snapshot: the launch rules (which kind of snapshot each method
takes, whose project, the config), the launch key, the database constraint behind them, the
worker's hash check of the demonstrations file, and how an SFT version reads on the lineage pages.

Valid launches publish to the real Redis broker (no worker listens here: a run stays queued);
refused ones must leave the gpu queue as it was.
"""

from __future__ import annotations

import json

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from feedback_site.annotation.imports import import_file
from feedback_site.core.errors import Invalid
from feedback_site.registry.models import ModelKind, ModelVersion
from feedback_site.registry.services import version_record
from feedback_site.snapshots.services import snapshot_create
from feedback_site.training import services
from feedback_site.training.models import TrainingRun, TrainingStatus
from tests.demonstrations.helpers import make_demonstration_snapshot, toy_items
from tests.workers.conftest import redis_broker  # noqa: F401  (fixture: the test Redis, emptied)
from workers import training_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def gpu_queue(redis_broker):  # noqa: F811
    import redis

    client = redis.Redis.from_url(redis_broker)
    return lambda: client.llen("gpu")


@pytest.fixture
def world(project, make_project, site_admin, annotator, make_user, add_member):
    lines = [{"prompt": f"Q{i}?", "response_a": f"good {i}", "response_b": f"bad {i}", "preferred": "a"} for i in range(4)]
    import_file(project=project, actor=site_admin, kind="pairs", filename="p.jsonl", data="\n".join(json.dumps(x) for x in lines).encode())
    preferences, _ = snapshot_create(project=project, actor=site_admin)
    demos = make_demonstration_snapshot(project, staff=site_admin, annotator=annotator, items=toy_items(3))
    other = make_project("Other")
    writer = make_user("other-writer")
    add_member(other, writer, "annotator")
    foreign = make_demonstration_snapshot(other, staff=site_admin, annotator=writer, items=toy_items(2))
    return {"project": project, "preferences": preferences, "demos": demos, "foreign": foreign, "annotator": annotator}


def _rm(project, snapshot):
    from feedback_site.registry.services import version_register

    return version_register(
        project=project,
        kind=ModelKind.REWARD,
        name="rm",
        artifact_uri="/tmp/rm",
        base_model="b",
        parent=project.current_policy,
        snapshot=snapshot,
    )


@pytest.mark.parametrize(
    "method, data, config, phrase, code",
    [
        ("sft", {}, {}, "demonstration_snapshot: sft needs a demonstration snapshot", "missing_demonstration_snapshot"),
        ("sft", {"snapshot": "preferences"}, {}, "snapshot: sft trains on demonstrations", "bad_snapshot"),
        ("sft", {"snapshot": "preferences", "demonstration_snapshot": "demos"}, {}, "not on a preference snapshot", "bad_snapshot"),
        (
            "sft",
            {"demonstration_snapshot": "foreign"},
            {},
            "demonstration_snapshot: the demonstration snapshot belongs to another project",
            "bad_demonstration_snapshot",
        ),
        (
            "dpo",
            {"snapshot": "preferences", "demonstration_snapshot": "demos"},
            {},
            "demonstration_snapshot: dpo trains on preference pairs",
            "bad_demonstration_snapshot",
        ),
        (
            "reward",
            {"demonstration_snapshot": "demos"},
            {},
            "demonstration_snapshot: reward trains on preference pairs",
            "bad_demonstration_snapshot",
        ),
        ("dpo", {}, {}, "snapshot: dpo needs a preference snapshot", "missing_snapshot"),
        ("sft", {"demonstration_snapshot": "demos"}, {"eval_fraction": 1.0}, "eval_fraction", "bad_config"),
        ("sft", {"demonstration_snapshot": "demos"}, {"beta": 0.1}, "beta", "bad_config"),
        ("sft", {"demonstration_snapshot": "demos"}, {"learning_rate": 0}, "learning_rate", "bad_config"),
        ("sft", {"demonstration_snapshot": "demos", "reward_model": True}, {}, "sft does not use a reward model", "bad_reward_model"),
    ],
)
def test_bad_sft_launches_are_refused_naming_the_field_and_nothing_is_queued(
    world, site_admin, gpu_queue, method, data, config, phrase, code
):
    kwargs = {name: world[key] for name, key in data.items() if name != "reward_model"}
    if data.get("reward_model"):
        kwargs["reward_model"] = _rm(world["project"], world["preferences"])
    with pytest.raises(Invalid, match=phrase) as caught:
        services.training_launch(project=world["project"], actor=site_admin, method=method, config=config, **kwargs)
    assert caught.value.code == code and caught.value.status_code == 400
    assert not TrainingRun.objects.exists() and gpu_queue() == 0


def test_sft_launch_queues_one_run_keyed_by_the_demonstrations_content(world, site_admin, gpu_queue):
    project, demos = world["project"], world["demos"]
    config = {"max_steps": 4, "use_lora": True}
    run, created = services.training_launch(project=project, actor=site_admin, method="sft", demonstration_snapshot=demos, config=config)
    assert created and gpu_queue() == 1
    assert (run.method, run.snapshot, run.demonstration_snapshot, run.parent) == ("sft", None, demos, project.current_policy)
    assert run.config["use_lora"] is True and run.config["completion_only_loss"] is True  # SFT's defaults filled in
    again, created_again = services.training_launch(
        project=project, actor=site_admin, method="sft", demonstration_snapshot=demos, config=config
    )
    assert (again.pk, created_again) == (run.pk, False) and gpu_queue() == 1

    # New demonstrations make new content, hence a new run while the first is still queued.
    more = make_demonstration_snapshot(project, staff=site_admin, annotator=world["annotator"], items=toy_items(2, offset=7))
    assert more.content_hash != demos.content_hash
    second, created_second = services.training_launch(
        project=project, actor=site_admin, method="sft", demonstration_snapshot=more, config=config
    )
    assert created_second and second.pk != run.pk and second.launch_key != run.launch_key and gpu_queue() == 2


def test_the_database_refuses_a_run_with_the_wrong_kind_of_data(world, site_admin):
    project = world["project"]
    from feedback_site.ratings.models import RatingSnapshot

    ratings = RatingSnapshot.objects.create(
        project=project,
        number=1,
        content_hash="r" * 64,
        path="r.jsonl",
        example_count=2,
        desirable_count=1,
        undesirable_count=1,
        split_count=0,
    )
    common = {"project": project, "parent": project.current_policy, "config": {}, "config_hash": "h", "created_by": site_admin}
    bad_rows = [
        {"method": "sft", "snapshot": world["preferences"]},
        {"method": "sft", "snapshot": world["preferences"], "demonstration_snapshot": world["demos"]},
        {"method": "sft"},
        {"method": "sft", "rating_snapshot": ratings},
        {"method": "dpo", "demonstration_snapshot": world["demos"]},
        {"method": "dpo", "snapshot": world["preferences"], "demonstration_snapshot": world["demos"]},
        {"method": "dpo", "rating_snapshot": ratings},
        {"method": "reward"},
        {"method": "kto"},
        {"method": "kto", "snapshot": world["preferences"], "rating_snapshot": ratings},
    ]
    for index, row in enumerate(bad_rows):
        with pytest.raises(IntegrityError, match="training_data_kind_matches_method"), transaction.atomic():
            TrainingRun.objects.create(launch_key=f"bad-{index}", **common, **row)
    TrainingRun.objects.create(launch_key="ok-sft", method="sft", demonstration_snapshot=world["demos"], **common)
    TrainingRun.objects.create(launch_key="ok-dpo", method="dpo", snapshot=world["preferences"], **common)
    TrainingRun.objects.create(launch_key="ok-kto-pairs", method="kto", snapshot=world["preferences"], **common)
    TrainingRun.objects.create(launch_key="ok-kto-ratings", method="kto", rating_snapshot=ratings, **common)


def test_a_changed_demonstrations_file_fails_the_run_before_training(world, site_admin, settings, gpu_queue):
    project, demos = world["project"], world["demos"]
    run, _ = services.training_launch(
        project=project, actor=site_admin, method="sft", demonstration_snapshot=demos, config={"max_steps": 2}
    )
    path = settings.ARTIFACTS_DIR / demos.path
    path.write_text(path.read_text().replace("lovely", "awful"))
    training_job.run_training(run.pk)  # the worker's own code, in this process
    run.refresh_from_db()
    assert run.status == TrainingStatus.FAILED
    assert "does not match its recorded hash" in run.message and demos.path in run.message
    assert run.output_version is None and not training_job.run_dir(run.pk).exists()


def test_an_sft_version_has_no_preference_snapshot_and_the_pages_show_its_demonstrations(world, site_admin, client, gpu_queue, tmp_path):
    project, demos = world["project"], world["demos"]
    run, _ = services.training_launch(
        project=project, actor=site_admin, method="sft", demonstration_snapshot=demos, config={"max_steps": 2}
    )
    services.training_claim(run_id=run.pk)
    version = services.training_succeed(
        run_id=run.pk,
        artifact_dir=str(tmp_path / "final"),
        code_version="t",
        base_model="b",
        metrics={"loss": 1.5, "eval_loss": 1.2, "eval_loss_before": 2.0},
    )
    assert (version.kind, version.snapshot, version.parent) == (ModelKind.POLICY, None, project.current_policy)
    assert version.name == f"SFT of {project.current_policy.name} on demonstration snapshot {demos.number}"
    assert version.metrics["method"] == "sft" and version.metrics["training_run"] == run.pk
    record = version_record(version)
    assert record["snapshot_id"] is None and record["demonstration_snapshot_id"] == demos.pk
    assert record["demonstration_snapshot_content_hash"] == demos.content_hash

    client.force_login(site_admin)
    api = client.get(f"/api/v1/versions/{version.pk}/").json()
    assert api["snapshot_id"] is None and api["demonstration_snapshot_id"] == demos.pk
    run_api = client.get(reverse("api-training-run", args=[run.pk])).json()
    assert run_api["snapshot_id"] is None and run_api["demonstration_snapshot_id"] == demos.pk
    models_html = client.get(reverse("project-models", args=[project.pk])).content.decode()
    assert f"demonstrations #{demos.number}" in models_html and "Held-out loss of the parent" in models_html
    timeline = client.get(reverse("project-versions", args=[project.pk])).content.decode()
    assert f"snapshot: demonstrations #{demos.number}" in timeline
    run_html = client.get(reverse("training-run", args=[run.pk])).content.decode()
    assert f"Demonstration snapshot {demos.number} ({demos.demonstration_count} demonstrations)" in run_html
    assert demos.content_hash[:12] in run_html
    training_html = client.get(reverse("project-training", args=[project.pk])).content.decode()
    assert f"demonstrations #{demos.number}" in training_html
    assert ModelVersion.objects.filter(project=project, kind=ModelKind.POLICY).count() == 2
