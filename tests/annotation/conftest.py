"""Queue tests run through every implementation the current database has: on PostgreSQL the
PL/pgSQL functions (what PostgreSQL deployments use) and the ORM; on SQLite (the laptop
default) the ORM. Run on both databases, that covers SQLite (ORM), PostgreSQL (ORM) and
PostgreSQL (functions). Modules opt in with `pytest.mark.usefixtures("queue_path")`."""

from __future__ import annotations

import pytest
from django.conf import settings


def queue_implementations() -> list[str]:
    """ "sql" (the PostgreSQL functions, queue_pg) where the database has them, and "orm" (queue.py)."""
    on_postgres = "postgresql" in settings.DATABASES["default"]["ENGINE"]
    return ["sql", "orm"] if on_postgres else ["orm"]


@pytest.fixture(params=queue_implementations())
def queue_path(request, monkeypatch):
    from feedback_site.annotation import services

    monkeypatch.setattr(services, "USE_SQL_FAST_PATH", request.param == "sql")
    return request.param
