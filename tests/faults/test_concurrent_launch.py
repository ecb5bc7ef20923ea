"""Two staff press "launch" on the same training run at the same moment: one run, one task.

Real PostgreSQL (each thread has its own connection and transaction) and the real Redis broker
(the db named by CELERY_BROKER_URL, emptied first); requests go through the API.
"""

from __future__ import annotations

import json
import os
import threading

import pytest
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token

from feedback_site.training.models import TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker():
    import redis

    from workers.celery_app import app

    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url.startswith("redis://"):
        pytest.skip("needs CELERY_BROKER_URL=redis://... (the Makefile sets it)")
    client = redis.Redis.from_url(url)
    client.flushdb()
    app._pool = None
    yield client
    client.flushdb()


@pytest.fixture
def snapshot(project, site_admin):
    from feedback_site.annotation.imports import import_file
    from feedback_site.snapshots.services import snapshot_create

    lines = [{"prompt": f"Q{i}?", "response_a": f"good {i}", "response_b": f"bad {i}", "preferred": "a"} for i in range(4)]
    import_file(project=project, actor=site_admin, kind="pairs", filename="l.jsonl", data="\n".join(json.dumps(x) for x in lines).encode())
    return snapshot_create(project=project, actor=site_admin)[0]


@pytest.mark.parametrize("attempt", range(2))
def test_two_staff_launching_the_same_run_at_once_get_one_run(attempt, project, snapshot, site_admin, ml_staff, broker):
    tokens = [Token.objects.create(user=user).key for user in (site_admin, ml_staff)]
    body = json.dumps({"method": "reward", "snapshot_id": snapshot.pk, "config": {"max_steps": 5, "learning_rate": 1e-4}})
    barrier = threading.Barrier(len(tokens))
    answers: list = [None] * len(tokens)

    def launch(i: int) -> None:
        try:
            client = Client(HTTP_AUTHORIZATION=f"Token {tokens[i]}")
            barrier.wait(timeout=30)
            answers[i] = client.post(f"/api/v1/projects/{project.pk}/training-runs/", data=body, content_type="application/json")
        finally:
            connection.close()

    threads = [threading.Thread(target=launch, args=(i,)) for i in range(len(tokens))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200, 201], [a.content for a in answers]  # one created it, the other was given it
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert TrainingRun.objects.count() == 1
    assert broker.llen("gpu") == 1  # one task for the one run
