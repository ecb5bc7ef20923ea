"""Tasks as one interface: every task is declared by a spec, routed from it, named by domain, and
enqueued only when the transaction that wrote its rows commits."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.db import transaction

from feedback_site.core.errors import QueueUnavailable
from feedback_site.core.queue import enqueue
from workers import task_names
from workers.celery_app import app

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = {"generation", "training", "evaluation", "quality", "snapshots", "loop", "playground", "conversations", "ops"}


def _our_tasks() -> dict[str, object]:
    app.loader.import_default_modules()
    return {name: t for name, t in app.tasks.items() if not name.startswith("celery.")}


def test_every_registered_task_has_a_spec_and_every_spec_a_task():
    registered = set(_our_tasks())
    declared = {name for spec in task_names.SPECS for name in (spec.name, *spec.aliases)}
    assert registered == declared


def test_names_say_the_domain_and_old_names_run_the_same_function():
    for spec in task_names.SPECS:
        domain = spec.name.split(".")[0]
        assert domain in DOMAINS, spec.name
        assert domain not in {"default", "gpu"}, f"{spec.name} is named after a queue"
        for alias in spec.aliases:
            assert app.tasks[alias].__wrapped__ is app.tasks[spec.name].__wrapped__


def test_routes_come_from_the_specs_only():
    routes = app.conf.task_routes
    assert routes == task_names.ROUTES
    assert not any("*" in name for name in routes), "no pattern routes: a spec names its queue"
    assert app.amqp.router.route({}, "evaluation.run")["queue"].name == "gpu"
    assert app.amqp.router.route({}, "generation.evaluate")["queue"].name == "gpu"
    assert app.amqp.router.route({}, "snapshots.build")["queue"].name == "default"
    assert app.amqp.router.route({}, "playground.generate")["queue"].name == "playground"


def test_limits_and_retries_come_from_the_spec():
    tasks = _our_tasks()
    ping = tasks[task_names.OPS_PING.name]
    assert (ping.soft_time_limit, ping.time_limit) == (task_names.OPS_PING.soft_time_limit, task_names.OPS_PING.time_limit)
    snapshot = tasks[task_names.SNAPSHOT_BUILD.name]
    assert snapshot.max_retries == task_names.SNAPSHOT_BUILD.retries and snapshot.autoretry_for
    # Runs that can run out of memory or diverge are never retried automatically.
    assert not getattr(tasks[task_names.TRAINING_RUN.name], "autoretry_for", ())
    # acks_late is set once, app-wide, not per task.
    assert app.conf.task_acks_late is True and app.conf.task_reject_on_worker_lost is True


def test_no_task_repeats_the_app_wide_flags_or_names_itself_by_string():
    for path in (ROOT / "workers").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "task":
                if isinstance(node.func.value, ast.Name) and node.func.value.id == "app":
                    assert path.name == "celery_app.py", f"{path.name}:{node.lineno} uses @app.task; use @task(SPEC)"
            if isinstance(node, ast.keyword) and node.arg in {"acks_late", "reject_on_worker_lost"}:
                pytest.fail(f"{path.name}:{node.value.lineno} repeats {node.arg}, which is set app-wide")


def test_services_pass_specs_not_strings():
    names = {name for spec in task_names.SPECS for name in (spec.name, *spec.aliases)}
    for path in (ROOT / "feedback_site").rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno} names task {node.value!r} by string; use its spec")


@pytest.fixture
def sends(monkeypatch):
    calls: list[tuple[str, tuple]] = []

    def send_task(name, args=None, **options):
        calls.append((name, tuple(args or ())))
        return SimpleNamespace(id=options.get("task_id"))

    monkeypatch.setattr(app, "send_task", send_task)
    return calls


@pytest.mark.django_db(transaction=True)
def test_enqueue_in_autocommit_sends_at_once(sends):
    task_id = enqueue(task_names.SNAPSHOT_BUILD, 7)
    assert sends == [("snapshots.build", (7,))] and task_id


@pytest.mark.django_db(transaction=True)
def test_enqueue_inside_a_transaction_waits_for_the_commit(sends):
    with transaction.atomic():
        enqueue(task_names.SNAPSHOT_BUILD, 7)
        with transaction.atomic():
            enqueue(task_names.TRAINING_RUN, 8)
        assert sends == [], "nothing may be sent before the rows are committed"
    assert sends == [("snapshots.build", (7,)), ("training.run", (8,))]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_sends_nothing(sends):
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue(task_names.SNAPSHOT_BUILD, 7)
        raise RuntimeError("the service failed after enqueueing")
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():  # a savepoint rolled back
            enqueue(task_names.TRAINING_RUN, 9)
            raise RuntimeError("the inner step failed")
    assert sends == []


@pytest.mark.django_db(transaction=True)
def test_broker_down_calls_on_failure_and_says_so(monkeypatch):
    from kombu.exceptions import OperationalError

    def down(name, args=None, **options):
        raise OperationalError("Connection refused")

    monkeypatch.setattr(app, "send_task", down)
    failures: list[QueueUnavailable] = []
    with pytest.raises(QueueUnavailable, match="task queue is unavailable"):
        enqueue(task_names.SNAPSHOT_BUILD, 7, on_failure=failures.append)
    assert len(failures) == 1
    # Inside a transaction the error comes at commit, after the rows are stored.
    with pytest.raises(QueueUnavailable), transaction.atomic():
        enqueue(task_names.SNAPSHOT_BUILD, 8, on_failure=failures.append)
    assert len(failures) == 2


def test_spec_rejects_a_name_without_a_domain_and_inverted_limits():
    with pytest.raises(ValueError, match="domain"):
        task_names.TaskSpec("ping")
    with pytest.raises(ValueError, match="time_limit"):
        task_names.TaskSpec("ops.x", soft_time_limit=10, time_limit=5)
