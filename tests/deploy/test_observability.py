"""Observability: JSON log lines with task and run ids, the detailed health endpoint against the
real PostgreSQL, Redis and a real Celery worker process, and the operations page."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.db import connection

from feedback_site.core.logs import ContextFilter, JsonFormatter, log_context
from tests.workers.conftest import redis_broker, start_worker, wait_for  # noqa: F401  (fixtures)


@pytest.fixture
def json_log():
    """A handler configured like settings.LOGGING's console handler with LOG_FORMAT=json."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("workers.training_job")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_log_lines_of_a_celery_task_carry_its_task_id_and_run_id(json_log, monkeypatch):
    from feedback_site.core import logs
    from workers.celery_app import app

    name = "training.log_probe_for_tests"
    monkeypatch.setitem(logs.RUN_KINDS, name, "training")  # as workers/task_names.py declares training.run

    @app.task(name=name, bind=True)
    def probe(self, run_id: int) -> str:
        logging.getLogger("workers.training_job").info("step %d of run %d", 3, run_id)
        return self.request.id

    try:
        result = probe.apply(args=[42])  # a real Celery request context, executed in this process
    finally:
        app.tasks.pop(name)  # every registered task must have a spec (tests/workers/test_task_interface.py)
    logging.getLogger("workers.training_job").warning("outside any task")
    with log_context(run_id=7, run_kind="generation"):
        logging.getLogger("workers.training_job").info("inside a log context")

    inside, outside, context = json_log()
    assert inside["message"] == "step 3 of run 42" and inside["level"] == "INFO"
    assert inside["task_id"] == result.id == result.result
    assert inside["task_name"] == "training.log_probe_for_tests"
    assert inside["run_id"] == 42 and inside["run_kind"] == "training"
    assert inside["logger"] == "workers.training_job" and inside["ts"].endswith("+00:00")
    assert "task_id" not in outside and "run_id" not in outside
    assert context["run_id"] == 7 and context["run_kind"] == "generation"


def test_settings_pick_the_json_formatter_for_production_logs(settings):
    from feedback_site.core import logs

    assert settings.LOGGING["filters"]["context"]["()"] == "feedback_site.core.logs.ContextFilter"
    assert settings.LOGGING["formatters"]["json"]["()"] == "feedback_site.core.logs.JsonFormatter"
    assert "context" in settings.LOGGING["handlers"]["console"]["filters"]
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom %s", ("!",), None)
    logs.ContextFilter().filter(record)
    assert json.loads(logs.JsonFormatter().format(record))["message"] == "boom !"


@pytest.fixture
def queued_training_run(site_admin, make_project, monkeypatch, tmp_path):
    """A training run that stays queued (its task is not published), i.e. an active run."""
    from feedback_site.annotation.imports import import_file
    from feedback_site.snapshots.services import snapshot_create
    from feedback_site.training import services
    from rlhf.models import make_tiny_model

    policy = make_tiny_model(tmp_path / "tiny", seed=0)
    monkeypatch.setattr(services, "enqueue", lambda *args, **options: "not-published")
    project = make_project("Ops", base_policy_uri=str(policy))
    lines = [{"prompt": f"Q{i}?", "response_a": f"good {i}", "response_b": f"bad {i}", "preferred": "a"} for i in range(4)]
    import_file(project=project, actor=site_admin, kind="pairs", filename="p.jsonl", data="\n".join(json.dumps(x) for x in lines).encode())
    snapshot, _ = snapshot_create(project=project, actor=site_admin)
    run, _ = services.training_launch(project=project, actor=site_admin, method="reward", snapshot=snapshot, config={"max_steps": 1})
    return run


@pytest.mark.django_db(transaction=True)
def test_health_details_reports_database_broker_workers_queues_and_runs(
    client,
    site_admin,
    start_worker,
    redis_broker,
    queued_training_run,
    settings,  # noqa: F811
):
    import redis

    from workers.celery_app import app

    settings.CELERY_BROKER_URL = redis_broker
    worker = start_worker(queues="default", name="opsprobe")
    client.force_login(site_admin)
    # Two tasks wait on the gpu queue, which no worker consumes here.
    for _ in range(2):
        app.send_task("ops.ping", queue="gpu")
    assert redis.Redis.from_url(redis_broker).llen("gpu") == 2

    def healthy():
        response = client.get("/api/v1/health/details?timeout=2")
        return response if response.status_code == 200 else None

    body = wait_for(healthy, timeout=90, worker=worker, what="the worker to answer the ping").json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] and body["database"]["vendor"] == connection.vendor
    assert body["broker"] == {**body["broker"], "ok": True, "transport": "redis"}
    names = [w["name"] for w in body["workers"]["workers"]]
    assert any(name.startswith("opsprobe@") for name in names)
    assert body["workers"]["queues_without_worker"] == ["gpu"]
    assert body["queues"]["gpu"] == 2 and body["queues"]["default"] == 0
    assert {"kind": "training", "id": queued_training_run.pk}.items() <= body["active_runs"]["runs"][0].items()

    # The same on the staff page.
    page = client.get("/ops/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-queue="gpu"><td>gpu</td><td>2</td>' in html
    assert f'data-run="{queued_training_run.pk}"' in html and "opsprobe@" in html

    # A worker that is gone turns the status to degraded (503), naming what is missing.
    worker.kill()
    response = client.get("/api/v1/health/details?timeout=0.5")
    assert response.status_code == 503
    assert response.json()["workers"]["ok"] is False and response.json()["database"]["ok"] is True


@pytest.mark.django_db
def test_broker_down_is_reported_not_raised(client, site_admin, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    client.force_login(site_admin)
    response = client.get("/api/v1/health/details")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded" and body["database"]["ok"] is True
    assert body["broker"]["ok"] is False and "Connection" in body["broker"]["error"]
    assert body["queues"] == {"gpu": None, "default": None}


@pytest.mark.django_db
def test_health_details_and_ops_page_are_for_site_admins_only(client, make_user):
    assert client.get("/api/v1/health/details").status_code == 401
    assert client.get("/ops/").status_code == 302  # to the login page
    client.force_login(make_user("plain"))
    assert client.get("/api/v1/health/details").status_code == 403
    assert client.get("/ops/").status_code == 403
    assert client.get("/api/v1/health/details?timeout=abc").status_code == 403  # permission before input


@pytest.mark.django_db
def test_bad_timeout_is_a_400(client, site_admin):
    client.force_login(site_admin)
    response = client.get("/api/v1/health/details?timeout=abc")
    assert response.status_code == 400 and "timeout" in response.json()["detail"]
