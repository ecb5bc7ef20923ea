"""The snapshot page in a real browser: a snapshot being built shows its status and progress and
turns ready, with its counts, hash and downloads, without the page being reloaded."""

from __future__ import annotations

import pytest

from feedback_site.snapshots.models import Snapshot
from feedback_site.snapshots.services import snapshot_build, snapshot_start
from tests.browser.conftest import _fast_password_hashing, login, page  # noqa: F401  (fixtures)
from tests.quality.conftest import bulk_judge
from tests.workers.conftest import redis_broker  # noqa: F401  (fixture: publishes to an emptied test Redis)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_progress_is_polled_in_place_until_ready(
    page,
    login,
    live_server,
    project,
    make_pairs,
    make_user,
    add_member,  # noqa: F811
    site_admin,
    redis_broker,
):  # noqa: F811
    x = make_user("px")
    add_member(project, x, "annotator")
    pairs = make_pairs(project, 6)
    bulk_judge([dict(pair=pair, user=x, preferred="a") for pair in pairs])
    pending = snapshot_start(project=project, actor=site_admin, note="live")
    path = f"/projects/{project.pk}/snapshots/"
    login(page, site_admin.username, path)
    row = page.locator(f'tr.snapshot-row[data-snapshot-id="{pending.pk}"]')
    assert row.locator('[data-field="status"]').inner_text() == "Pending"
    assert row.locator('[data-field="progress"]').inner_text() == "0 / 0 pairs"
    assert not row.locator('[data-field="downloads"]').is_visible()
    page.evaluate("window.__sameDocument = true")

    # The worker's job, run here against the live server's database; the page polls the API.
    ready = snapshot_build(pending.pk)
    assert ready.status == "ready"
    # A function, not a bare expression: the page's Content-Security-Policy forbids evaluating strings.
    page.wait_for_function(
        f"""() => document.querySelector('tr[data-snapshot-id="{pending.pk}"] [data-field="status"]').textContent === 'Ready'"""
    )
    assert page.evaluate("window.__sameDocument") is True  # updated in place, not reloaded
    assert row.locator('[data-field="hash"]').inner_text() == ready.content_hash[:12]
    assert row.locator('[data-field="preference_count"]').inner_text() == "6"
    assert row.locator('[data-field="progress"]').inner_text() == ""
    assert row.locator('[data-field="downloads"]').is_visible()
    assert Snapshot.objects.get(pk=pending.pk).status == "ready"
