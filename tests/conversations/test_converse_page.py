"""The conversation page in headless Chromium, keyboard only, with a real playground worker
generating every turn from a tiny policy: a 3-turn conversation (a pick, a ranking with a tie, a
pick), a reload in the middle brings back the same turn, and every turn arrives as pressed."""

from __future__ import annotations

import json

import pytest

from feedback_site.conversations import services
from feedback_site.conversations.models import BranchPoint, ConversationResult
from tests.browser.conftest import _fast_password_hashing, login, page  # noqa: F401  (fixtures)
from tests.playground.conftest import start_playground_worker, tiny_models  # noqa: F401  (fixtures)
from tests.workers.conftest import redis_broker  # noqa: F401  (fixture)

from .helpers import OPENING

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _wait_ready(page, turn: int) -> str:
    page.wait_for_function(
        "turn => { const r = document.getElementById('converse'); return r.dataset.mode === 'error' || (r.dataset.mode === 'work'"
        " && r.dataset.status === 'ready' && document.getElementById('cv-turn').textContent.includes('turn ' + turn + ' of')); }",
        arg=turn,
        timeout=120_000,
    )
    assert page.get_attribute("#converse", "data-mode") == "work", page.inner_text("#cv-error-text")
    return page.get_attribute("#converse", "data-branch-point")


def _controls_on_screen(page) -> None:
    # 1366x768: the replies and the submit button are in view without scrolling the page.
    for selector in ("#cv-submit", "#cv-replies li:first-child"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + min(box["height"], 40) <= 768, (selector, box)


def test_a_three_turn_conversation_with_a_reload_in_the_middle(
    page, login, site_admin, tiny_models, make_user, add_member, start_playground_worker
):  # noqa: F811
    from feedback_site.registry.services import project_create

    page.set_viewport_size({"width": 1366, "height": 768})
    project = project_create(creator=site_admin, name="Talks", overlap=1, base_policy_uri=str(tiny_models["base"]))
    services.tasks_create(
        project=project,
        actor=site_admin,
        conversations=[OPENING],
        turns=3,
        candidates=3,
        sampling={"max_new_tokens": 10, "temperature": 1.2},
    )
    talker = make_user("talker")
    add_member(project, talker, "annotator")
    start_playground_worker("page")

    login(page, talker.username, f"/projects/{project.pk}/converse/")
    page.keyboard.press("?")
    assert page.is_visible("#cv-help")
    page.keyboard.press("?")

    # Turn 1: pick reply 2.
    first = _wait_ready(page, 1)
    _controls_on_screen(page)
    assert page.inner_text("#cv-system-text") == "You are terse."
    assert page.is_disabled("#cv-submit")
    page.keyboard.press("2")
    page.keyboard.press("Enter")

    # Turn 2: the scripted user turn follows the chosen reply; then a reload in the middle.
    second = _wait_ready(page, 2)
    assert second != first
    assert OPENING["followups"][0] in page.inner_text("#cv-history")
    history = page.inner_text("#cv-history")
    page.reload()
    assert _wait_ready(page, 2) == second and page.inner_text("#cv-history") == history
    # A ranking with a tie: reply 3 first, then 1 and 2 tied.
    page.keyboard.press("Shift+Digit3")
    page.keyboard.press("Shift+Digit1")
    page.keyboard.press("=")
    page.keyboard.press("Shift+Digit2")
    ranked = json.loads(page.get_attribute("#converse", "data-order"))
    page.keyboard.press("Enter")

    # Turn 3, the last: pick reply 1; the conversation is done.
    third = _wait_ready(page, 3)
    assert "Last turn" in page.inner_text("#cv-scripted")
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    page.wait_for_selector('#converse[data-mode="done"]')
    page.wait_for_function("() => document.getElementById('cv-finished').textContent === '1'")
    page.keyboard.press("n")
    page.wait_for_selector('#converse[data-mode="empty"]')

    points = {p.pk: p for p in BranchPoint.objects.filter(annotator=talker)}
    assert set(points) == {int(first), int(second), int(third)}
    replies = lambda pk: list(points[pk].replies.order_by("sample_index").values_list("pk", flat=True))  # noqa: E731
    assert points[int(first)].order == [[replies(int(first))[1]], [replies(int(first))[0], replies(int(first))[2]]]
    assert points[int(second)].order == ranked
    ids = replies(int(second))
    assert ranked[0] == [ids[2]] and sorted(ranked[1]) == sorted([ids[0], ids[1]])
    assert points[int(third)].order[0] == [replies(int(third))[0]]
    assert ConversationResult.objects.filter(annotator=talker).count() == 1
