"""Fixtures for the page tests: logged-in clients per role and a stand-in for the broker.

Launching generation publishes a Celery task. These are page tests, so `send_task` is replaced:
`sent_tasks` records the call (the worker path is tested elsewhere) and `broker_down` raises
what kombu raises when Redis cannot be reached.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.test import Client


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Users are created with passwords in most fixtures; the production hasher's million PBKDF2
    # rounds would dominate these tests' time while testing nothing about the pages.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def login():
    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def outsider(make_user):
    """A logged-in user with no membership in the project."""
    return make_user("outsider")


@pytest.fixture
def superuser(make_user):
    return make_user("root", superuser=True)


@pytest.fixture
def sent_tasks(monkeypatch):
    from workers.celery_app import app

    calls: list[tuple[str, tuple]] = []

    def send_task(name, args=None, kwargs=None, **options):
        calls.append((name, tuple(args or ())))
        return SimpleNamespace(id=f"test-task-{len(calls)}")

    monkeypatch.setattr(app, "send_task", send_task)
    return calls


@pytest.fixture
def broker_down(monkeypatch):
    from kombu.exceptions import OperationalError

    from workers.celery_app import app

    def send_task(name, args=None, kwargs=None, **options):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(app, "send_task", send_task)


@pytest.fixture
def make_prompts():
    from feedback_site.annotation.models import Prompt

    def make(project, n: int):
        return Prompt.objects.bulk_create([Prompt(project=project, text=f"Prompt number {i}?") for i in range(n)])

    return make


@pytest.fixture
def generation_run(project, site_admin, make_prompts, sent_tasks):
    from feedback_site.generation.services import generation_launch

    make_prompts(project, 3)
    return generation_launch(project=project, actor=site_admin, k=2)
