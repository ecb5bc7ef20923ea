"""Queue tests run twice on PostgreSQL: through the hand-written SQL of the hot paths (what
PostgreSQL deployments use) and through the ORM implementation (what SQLite, the laptop default,
uses). Modules opt in with `pytest.mark.usefixtures("queue_path")`."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sql", "orm"])
def queue_path(request, monkeypatch):
    from feedback_site.annotation import services

    monkeypatch.setattr(services, "USE_SQL_FAST_PATH", request.param == "sql")
    return request.param
