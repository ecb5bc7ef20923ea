"""Fixtures shared by the Django-side tests: users in each role and a project with pairs.

The suite runs against the database named by DATABASE_URL: the real PostgreSQL (the Makefile's
first pass; pytest-django creates and drops `test_<name>`), or SQLite (`sqlite:///path`, the
embedded default `make run` serves; the Makefile's second pass). On SQLite the test database is a
file next to the URL's (`test_<name>`), never in memory, so the Celery workers that tests start in
other processes open the same database; tests marked `postgres_only` are deselected there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never touch the real artifact folder or a laptop broker.
os.environ.setdefault("FEEDBACK_DEFAULT_POLICY", "builtin:smollm2-135m-instruct")


def _sqlite_run(config) -> bool:
    if not config.pluginmanager.hasplugin("django"):
        return False
    from django.conf import settings

    from tests.backends import is_sqlite

    return settings.configured and is_sqlite(settings.DATABASES["default"])


def pytest_collection_modifyitems(config, items):
    """On SQLite, leave out (deselect, not skip: nothing counts as passed) the tests that need
    PostgreSQL itself: SKIP LOCKED concurrency, PL/pgSQL functions, pg restarts, pg_dump."""
    if not _sqlite_run(config):
        return
    keep, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker("postgres_only") else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    config._postgres_only_deselected = len(dropped)


def pytest_terminal_summary(terminalreporter, config):
    dropped = getattr(config, "_postgres_only_deselected", None)
    if dropped is not None:
        terminalreporter.write_line(f"SQLite run: {dropped} postgres_only tests deselected (they run on PostgreSQL)")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """A file-backed SQLite test database (pytest-django would make it in-memory, which a worker
    process cannot open)."""
    from django.conf import settings

    from tests.backends import is_sqlite

    db = settings.DATABASES["default"]
    if is_sqlite(db) and not db.get("TEST", {}).get("NAME"):
        name = Path(db["NAME"])
        db.setdefault("TEST", {})["NAME"] = str(name.with_name(f"test_{name.name}"))


@pytest.fixture(autouse=True)
def _isolated_artifacts(request, tmp_path):
    # The rlhf tests also run without Django (`-p no:django`); they have no settings to patch.
    if not request.config.pluginmanager.hasplugin("django"):
        return
    settings = request.getfixturevalue("settings")
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    settings.ARTIFACTS_DIR.mkdir()
    # Fixtures create many users; the production hasher's PBKDF2 rounds would dominate the suite
    # while testing nothing. (Login throttling and real hashing are exercised in their own tests.)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _enqueue_sees_commits_as_in_production(request, monkeypatch):
    """A django_db test runs inside an atomic block that is rolled back, never committed, so work
    enqueued "after commit" would never be sent. Leave that block out: enqueue sends at once where
    production would be in autocommit, and still waits for the commit of a service's own atomic block.
    (tests/workers/test_task_interface.py checks the real on-commit behaviour.)"""
    if not request.config.pluginmanager.hasplugin("django") or "no_enqueue_patch" in request.keywords:
        return
    from django.db import transaction

    from feedback_site.core import queue

    def inside_non_test_transaction() -> bool:
        blocks = transaction.get_connection().atomic_blocks
        return any(not getattr(block, "_from_testcase", False) for block in blocks)

    monkeypatch.setattr(queue, "inside_transaction", inside_non_test_transaction)


@pytest.fixture
def make_user(django_user_model):
    counter = {"n": 0}

    def make(username: str | None = None, *, staff: bool = False, superuser: bool = False, password: str = "pw-for-tests-123"):
        counter["n"] += 1
        name = username or f"user{counter['n']}"
        user = django_user_model.objects.create_user(username=name, password=password, is_staff=staff or superuser)
        if superuser:
            user.is_superuser = True
            user.save(update_fields=["is_superuser"])
        return user

    return make


@pytest.fixture
def site_admin(make_user):
    return make_user("siteadmin", staff=True)


@pytest.fixture
def make_project(site_admin):
    from feedback_site.registry.services import project_create

    def make(name: str = "Demo", **kwargs):
        return project_create(creator=site_admin, name=name, **kwargs)

    return make


@pytest.fixture
def project(make_project):
    return make_project()


@pytest.fixture
def add_member(site_admin):
    from feedback_site.projects.services import membership_set

    def add(project, user, role: str):
        return membership_set(project=project, actor=site_admin, user=user, role=role)

    return add


@pytest.fixture
def annotator(make_user, project, add_member):
    user = make_user("ann1")
    add_member(project, user, "annotator")
    return user


@pytest.fixture
def ml_staff(make_user, project, add_member):
    user = make_user("mlstaff")
    add_member(project, user, "ml_staff")
    return user


@pytest.fixture
def make_pairs():
    """Creates `n` generated-looking pairs (two responses each) in a project."""
    from feedback_site.annotation.models import Pair, PairSource, Prompt, Response

    def make(project, n: int, *, overlap: int | None = None, texts=None):
        pairs = []
        for i in range(n):
            prompt = Prompt.objects.create(project=project, text=f"Question {i}?")
            a_text, b_text = texts(i) if texts else (f"Answer A{i}", f"Answer B{i}")
            a = Response.objects.create(prompt=prompt, text=a_text, sample_index=0)
            b = Response.objects.create(prompt=prompt, text=b_text, sample_index=1)
            pairs.append(
                Pair(
                    project=project,
                    prompt=prompt,
                    response_a=a,
                    response_b=b,
                    overlap=project.overlap if overlap is None else overlap,
                    source=PairSource.GENERATED,
                )
            )
        return Pair.objects.bulk_create(pairs)

    return make


# Playwright's sync API runs an asyncio loop in this thread; Django's ORM refuses to run inside
# one unless told that this (test-only, single-threaded) use is fine.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path(os.environ.get("FEEDBACK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    """One headless Debian Chromium for the whole session. Every browser test shares it: a second
    `sync_playwright()` while this one is open would fail inside Playwright's running loop."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (the Makefile does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()
