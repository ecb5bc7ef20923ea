"""Redis (the Celery broker) dies while annotators work, then comes back.

Real processes: a private redis-server (tests/faults/conftest.py) is SIGKILLed and restarted on
the same port with its append-only file; the app publishes to it through Celery as in
production. What must hold: annotating (next pair, submit, the annotator page) never needs the
broker; launching generation or training answers 503 `queue_unavailable` saying nothing was
started, and the run it recorded is marked failed with that message (never left `queued` with no
task behind it); once Redis is back, launching works at once, the task queued before the crash is
still there, and every queued run has exactly one message.
"""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from feedback_site.annotation.models import Judgment
from feedback_site.generation.models import GenerationRun
from feedback_site.training.models import TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


def _api(user) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")


def _queued_run_ids(server, queue: str = "gpu") -> list[tuple[str, int]]:
    ids = []
    for message in server.messages(queue):
        body = (
            json.loads(base64.b64decode(message["body"]))
            if message.get("properties", {}).get("body_encoding") == "base64"
            else json.loads(message["body"])
        )
        args = body[0]
        ids.append((message["headers"]["task"], args[0]))
    return ids


@pytest.fixture
def setup(project, site_admin, ml_staff, annotator, make_pairs):
    from feedback_site.annotation.imports import import_file
    from feedback_site.snapshots.services import snapshot_create

    make_pairs(project, 6)
    lines = [{"prompt": f"Q{i}?", "response_a": f"good {i}", "response_b": f"bad {i}", "preferred": "a"} for i in range(4)]
    import_file(
        project=project,
        actor=site_admin,
        kind="pairs",
        filename="labelled.jsonl",
        data="\n".join(json.dumps(x) for x in lines).encode(),
        queue_for_annotation=False,
    )
    snapshot, _ = snapshot_create(project=project, actor=site_admin)
    return project, snapshot


def _annotate_one(client, project) -> int:
    response = client.post(f"/api/v1/projects/{project.pk}/assignments/next")
    assert response.status_code == 200, response.content
    assignment_id = response.json()["assignment_id"]
    submitted = client.post(
        f"/api/v1/assignments/{assignment_id}/judgment",
        data=json.dumps({"choice": "left", "strength": "clear"}),
        content_type="application/json",
    )
    assert submitted.status_code == 201, submitted.content
    return assignment_id


def test_annotating_survives_redis_and_launching_resumes(setup, broker_on, ml_staff, annotator):
    project, snapshot = setup
    server = broker_on
    staff, worker = _api(ml_staff), _api(annotator)
    generation_url = f"/api/v1/projects/{project.pk}/generation-runs/"
    training_url = f"/api/v1/projects/{project.pk}/training-runs/"
    training_body = json.dumps({"method": "reward", "snapshot_id": snapshot.pk, "config": {"max_steps": 3}})

    # Before the crash: one generation run queued.
    before = staff.post(generation_url, data=json.dumps({"prompt_selection": "all", "k": 2}), content_type="application/json")
    assert before.status_code == 201, before.content
    first_run = before.json()["id"]
    assert _queued_run_ids(server) == [("generation.run", first_run)]
    _annotate_one(worker, project)

    server.kill()

    # Annotating continues: the queue path never touches the broker.
    for _ in range(2):
        _annotate_one(worker, project)
    page = Client()
    page.force_login(annotator)
    assert page.get(f"/projects/{project.pk}/annotate/").status_code == 200
    assert worker.get(f"/api/v1/projects/{project.pk}/my-progress").json()["judged"] == 3

    # Launching says clearly that the queue is unavailable, and leaves nothing pretending to be queued.
    refused = staff.post(generation_url, data=json.dumps({"prompt_selection": "all", "k": 2}), content_type="application/json")
    assert refused.status_code == 503, refused.content
    assert refused.json()["error"] == "queue_unavailable" and "nothing was started" in refused.json()["detail"]
    refused_training = staff.post(training_url, data=training_body, content_type="application/json")
    assert refused_training.status_code == 503 and refused_training.json()["error"] == "queue_unavailable"
    for run in [*GenerationRun.objects.exclude(pk=first_run), *TrainingRun.objects.all()]:
        assert run.status == "failed" and "queue is unavailable" in run.message, (run, run.status, run.message)
    assert GenerationRun.objects.get(pk=first_run).status == "queued"

    server.start()

    # Back: launching works at once (the web process reconnects by itself).
    again = staff.post(generation_url, data=json.dumps({"prompt_selection": "all", "k": 2}), content_type="application/json")
    assert again.status_code == 201, again.content
    trained = staff.post(training_url, data=training_body, content_type="application/json")
    assert trained.status_code == 201, trained.content
    # No task lost (the one queued before the crash survived it) and none duplicated (the refused
    # launches published nothing; every queued run has exactly one message).
    queued = sorted(_queued_run_ids(server))
    assert queued == sorted(
        [
            ("generation.run", first_run),
            ("generation.run", again.json()["id"]),
            ("training.run", trained.json()["id"]),
        ]
    )
    assert set(GenerationRun.objects.filter(status="queued").values_list("pk", flat=True)) == {first_run, again.json()["id"]}
    assert list(TrainingRun.objects.filter(status="queued").values_list("pk", flat=True)) == [trained.json()["id"]]
    assert Judgment.objects.filter(annotator=annotator).count() == 3
