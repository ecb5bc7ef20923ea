"""KTO on thumbs up / down: a rating snapshot launched from the API trains a draft policy version,
and the launch refuses rating snapshots for other methods, from other projects, or beside a
preference snapshot, naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feedback_site.registry.services import project_create
from feedback_site.training import services as training_services
from feedback_site.training.models import TrainingRun, TrainingStatus
from workers import training_job

from .helpers import is_good, make_answers, toy_answers

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny_policy(tmp_path_factory):
    from rlhf.models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture
def rated(site_admin, tiny_policy, make_user, add_member, monkeypatch):
    """A project whose 8 answers are rated (4 up, 4 down) and frozen into rating snapshot 1."""
    from feedback_site.ratings import services

    monkeypatch.setattr(training_services, "enqueue", lambda *args, **options: "task-id")
    project = project_create(creator=site_admin, name="Thumbs", base_policy_uri=str(tiny_policy))
    make_answers(project, toy_answers(8))
    rater = make_user("thumbs-rater")
    add_member(project, rater, "annotator")
    services.tasks_create(project=project, actor=site_admin, overlap=1)
    while (lease := services.next_task(project=project, annotator=rater)) is not None:
        services.submit(assignment_id=lease.pk, annotator=rater, label=is_good(lease.task.response.text))
    snapshot, _ = services.snapshot_create(project=project, actor=site_admin)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=site_admin).key}")
    return project, snapshot, client


def test_kto_on_a_rating_snapshot_from_the_api_registers_a_draft_policy(rated):
    project, snapshot, api = rated
    config = {"max_steps": 2, "batch_size": 4, "max_length": 128, "eval_fraction": 0.25}
    response = api.post(
        f"/api/v1/projects/{project.pk}/training-runs/",
        {"method": "kto", "rating_snapshot_id": snapshot.pk, "config": config},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["rating_snapshot_id"] == snapshot.pk and response.json()["snapshot_id"] is None
    run = TrainingRun.objects.get(pk=response.json()["id"])
    assert run.data_label == "rating snapshot 1"
    training_job.run_training(run.pk)
    run.refresh_from_db()
    assert run.status == TrainingStatus.SUCCEEDED, run.message
    version = run.output_version
    assert version.kind == "policy" and version.status == "draft"
    manifest = json.loads((Path(version.artifact_uri) / "manifest.json").read_text())
    # 8 rated answers, a quarter held out: 6 trained on, the classes as rated.
    assert manifest["train_examples"] == 6 and manifest["desirable_examples"] + manifest["undesirable_examples"] == 6
    assert manifest["data_sha256"] == snapshot.content_hash
    assert run.config_hash == version.config_hash == manifest["config_hash"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"method": "dpo", "rating_snapshot_id": "$ratings"}, "rating_snapshot"),
        ({"method": "kto", "rating_snapshot_id": "$ratings", "snapshot_id": "$pairs"}, "rating_snapshot"),
        ({"method": "kto", "rating_snapshot_id": 999999}, "rating_snapshot_id"),
        ({"method": "kto"}, "snapshot"),
    ],
)
def test_bad_kto_launches_are_400s_naming_the_field(rated, site_admin, body, field):
    from feedback_site.annotation.imports import import_file
    from feedback_site.snapshots.services import snapshot_create

    project, snapshot, api = rated
    lines = [{"prompt": f"Q{i}?", "response_a": f"good {i}", "response_b": f"bad {i}", "preferred": "a"} for i in range(4)]
    import_file(project=project, actor=site_admin, kind="pairs", filename="p.jsonl", data="\n".join(json.dumps(x) for x in lines).encode())
    pairs, _ = snapshot_create(project=project, actor=site_admin)
    values = {"$ratings": snapshot.pk, "$pairs": pairs.pk}
    body = {key: values.get(value, value) for key, value in body.items()}
    response = api.post(f"/api/v1/projects/{project.pk}/training-runs/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in json.dumps(response.json())
    assert not TrainingRun.objects.exists()
