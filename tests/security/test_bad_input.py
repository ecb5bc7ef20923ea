"""Bad launch requests (tests/data/bad_launches/manifest.json): each is answered 400 with the
problem named, and nothing is recorded or queued."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from feedback_site.generation.models import GenerationRun
from feedback_site.training.models import TrainingRun

pytestmark = pytest.mark.django_db
CASES = json.loads((Path(__file__).resolve().parents[1] / "data" / "bad_launches" / "manifest.json").read_text())["cases"]


@pytest.fixture(scope="module")
def queue_length():
    """Messages waiting in the gpu queue of the broker this process publishes to (real Redis)."""
    import redis

    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url.startswith("redis://"):
        return lambda: 0  # the embedded filesystem broker: counted by the run rows instead
    client = redis.Redis.from_url(url)
    return lambda: client.llen("gpu")


@pytest.fixture
def launch_world(make_project, site_admin, ml_staff, project, make_pairs, make_user, add_member):
    from feedback_site.annotation.imports import import_file
    from feedback_site.snapshots.services import snapshot_create
    from tests.demonstrations.helpers import make_demonstration_snapshot, toy_items

    other = make_project("Other")
    lines = [{"prompt": f"Q{i}?", "response_a": f"good {i}", "response_b": f"bad {i}", "preferred": "a"} for i in range(4)]
    snapshots = {}
    for key, target in (("$snapshot", project), ("$other_snapshot", other)):
        import_file(
            project=target, actor=site_admin, kind="pairs", filename="l.jsonl", data="\n".join(json.dumps(x) for x in lines).encode()
        )
        snapshots[key] = snapshot_create(project=target, actor=site_admin)[0].pk
    # SFT reads demonstration snapshots: one here, one in the other project.
    for key, target in (("$demo_snapshot", project), ("$other_demo_snapshot", other)):
        writer = make_user(f"writer-{target.pk}")
        add_member(target, writer, "annotator")
        snapshots[key] = make_demonstration_snapshot(target, staff=site_admin, annotator=writer, items=toy_items(2)).pk
    return {
        "project": project,
        "client": Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=ml_staff).key}"),
        "values": {**snapshots, "$policy": project.current_policy_id, "$other_policy": other.current_policy_id},
    }


def _fill(value, values):
    if isinstance(value, str) and value in values:
        return values[value]
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_bad_launch_is_a_400_naming_the_problem(case, launch_world, queue_length):
    project = launch_world["project"]
    path = "training-runs" if case["endpoint"] == "training" else "generation-runs"
    before = queue_length()
    response = launch_world["client"].post(
        f"/api/v1/projects/{project.pk}/{path}/",
        data=json.dumps(_fill(case["body"], launch_world["values"])),
        content_type="application/json",
    )
    assert response.status_code == 400, (response.status_code, response.content)
    body = response.json()
    assert case["phrase"] in json.dumps(body), body
    assert not TrainingRun.objects.exists() and not GenerationRun.objects.exists()
    assert queue_length() == before


def test_malformed_json_body_is_a_400(launch_world):
    project = launch_world["project"]
    for raw in ('{"method": "dpo", ', "[]", "null", '"dpo"', "\xff\xfe"):
        response = launch_world["client"].post(f"/api/v1/projects/{project.pk}/training-runs/", data=raw, content_type="application/json")
        assert response.status_code == 400, (raw, response.content)
    assert not TrainingRun.objects.exists()
