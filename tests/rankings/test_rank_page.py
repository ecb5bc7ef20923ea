"""The ranking page in headless Chromium, keyboard only, on a 1366×768 screen: a ranking of four
answers with a tie (the ranks pressed arrive as given, in the order shown), a reload in the middle
keeps the ranking in progress, an incomplete ranking is not sent, and the page ends empty."""

from __future__ import annotations

import pytest

from feedback_site.rankings import services
from feedback_site.rankings.models import Ranking
from tests.browser.conftest import _fast_password_hashing, login, page  # noqa: F401  (fixtures)

from .helpers import make_answer_set

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ANSWERS = [
    "**Paris** is the capital of France.",
    "Lyon.",
    "It is Paris, on the Seine, with about 2.1 million people in the city itself. " * 12,
    "I don't know <b>sorry</b>.",
]


def test_a_ranking_of_four_answers_with_a_tie_by_keyboard(page, login, project, site_admin, make_user, add_member):  # noqa: F811
    ids = make_answer_set(project, "What is the capital of France?", ANSWERS)
    services.tasks_create(project=project, actor=site_admin, answer_sets=[ids], overlap=1)
    ranker = make_user("ranker")
    add_member(project, ranker, "annotator")
    page.set_viewport_size({"width": 1366, "height": 768})

    login(page, ranker.username, f"/projects/{project.pk}/rank/")
    page.wait_for_selector('#rank[data-mode="work"]')
    assert "<b>sorry</b>" not in page.inner_html("#rk-answers")  # answer text is escaped, never live HTML
    shown = [int(v) for v in page.eval_on_selector_all(".rk-answer", "cards => cards.map(c => c.dataset.response)")]
    assert sorted(shown) == sorted(ids)
    # Every choice control is on screen without scrolling: the rank of each answer and the submit bar.
    for selector in [".rk-answer .rk-rank select", "#rk-submit", "#rk-unacceptable"]:
        for box in page.eval_on_selector_all(selector, "els => els.map(e => e.getBoundingClientRect().toJSON())"):
            assert box["top"] >= 0 and box["bottom"] <= 768 and box["right"] <= 1366, (selector, box)

    # The first answer shown is picked: rank it 2; the next is picked automatically: rank it 1.
    page.keyboard.press("2")
    page.keyboard.press("1")
    page.keyboard.press("Enter")  # two answers still unranked: nothing is sent
    page.wait_for_function("() => document.getElementById('rk-status').textContent.includes('every answer')")
    assert Ranking.objects.count() == 0 and page.is_disabled("#rk-submit")

    # A reload in the middle: the same answers, the same order, the ranks given so far.
    page.reload()
    page.wait_for_selector('#rank[data-mode="work"]')
    assert [int(v) for v in page.eval_on_selector_all(".rk-answer", "cards => cards.map(c => c.dataset.response)")] == shown
    assert page.get_attribute(f'.rk-answer[data-response="{shown[0]}"]', "data-rank") == "2"
    assert page.get_attribute(f'.rk-answer[data-response="{shown[1]}"]', "data-rank") == "1"

    # Third and fourth shown answers tie at rank 3 (with none left unranked the pick stays on the
    # fourth); Shift+↑ moves it up to 2 and Shift+↓ back to 3.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("3")
    page.keyboard.press("3")
    page.keyboard.press("Shift+ArrowUp")
    assert page.get_attribute(f'.rk-answer[data-response="{shown[3]}"]', "data-rank") == "2"
    page.keyboard.press("Shift+ArrowDown")
    assert page.get_attribute(f'.rk-answer[data-response="{shown[3]}"]', "data-rank") == "3"
    letters = page.eval_on_selector_all(".rk-letter", "els => els.map(e => e.textContent)")
    assert page.inner_text("#rk-order") == f"Your order: {letters[1]} > {letters[0]} > {letters[2]} = {letters[3]}"
    page.keyboard.press("w")
    page.keyboard.press("r")
    page.keyboard.type("B is too short")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")

    page.wait_for_selector('#rank[data-mode="empty"]')
    ranking = Ranking.objects.get()
    assert ranking.annotator == ranker and ranking.order_shown == shown
    assert ranking.tiers == [[shown[1]], [shown[0]], sorted([shown[2], shown[3]])]
    assert ranking.strength == "clear" and ranking.rationale == "B is too short"
    page.wait_for_function("() => document.getElementById('rk-ranked').textContent === '1'")
    assert page.inner_text("#rk-remaining") == "0"


def test_nine_long_answers_fit_the_screen_and_drag_places_an_answer(page, login, project, site_admin, make_user, add_member):  # noqa: F811
    ids = make_answer_set(project, "Write a long story. " * 30, [f"Story {i}: " + "once upon a time " * 80 for i in range(9)])
    services.tasks_create(project=project, actor=site_admin, answer_sets=[ids], overlap=1)
    ranker = make_user("dragger")
    add_member(project, ranker, "annotator")
    page.set_viewport_size({"width": 1366, "height": 768})
    login(page, ranker.username, f"/projects/{project.pk}/rank/")
    page.wait_for_selector('#rank[data-mode="work"]')
    for selector in [".rk-answer .rk-rank select", "#rk-submit", "#rk-skip"]:
        for box in page.eval_on_selector_all(selector, "els => els.map(e => e.getBoundingClientRect().toJSON())"):
            assert box["top"] >= 0 and box["bottom"] <= 768 and box["right"] <= 1366, (selector, box)
    for key in "123456789":
        page.keyboard.press(key)  # the answers in the order shown, ranks 1..9
    shown = [int(v) for v in page.eval_on_selector_all(".rk-answer", "cards => cards.map(c => c.dataset.response)")]
    # Drag the last answer onto the first: it takes rank 1 and the others move down one.
    page.drag_and_drop(f'.rk-answer[data-response="{shown[8]}"] .rk-answer-head', f'.rk-answer[data-response="{shown[0]}"] .rk-answer-head')
    ranks = [page.get_attribute(f'.rk-answer[data-response="{pk}"]', "data-rank") for pk in shown]
    assert ranks == ["2", "3", "4", "5", "6", "7", "8", "9", "1"]
    page.keyboard.press("Enter")
    page.wait_for_selector('#rank[data-mode="empty"]')
    assert Ranking.objects.get().tiers == [[shown[8]]] + [[pk] for pk in shown[:8]]
