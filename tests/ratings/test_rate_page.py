"""The rating page in headless Chromium, keyboard only: thumbs on five answers (one with a reason,
one skipped), a reload in the middle keeps the answer, and every rating arrives as given."""

from __future__ import annotations

import pytest

from feedback_site.ratings import services
from feedback_site.ratings.models import Rating
from tests.browser.conftest import _fast_password_hashing, login, page  # noqa: F401  (fixtures)

from .helpers import is_good, make_answers

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ITEMS = [
    ("What is 2+2?", "**4**, since 2+2 = 4."),
    ("Name a colour.", "17 412"),
    ("Say hello <b>politely</b>.", "Hello there, nice to meet you."),
    ("Capital of France?", "33"),
    ("A fruit?", "An apple."),
    ("A tree?", "An oak."),
]


def _current_answer(page) -> str:
    return page.inner_text("#rt-answer").strip()


def _wait_for_next(page, previous: str) -> None:
    page.wait_for_function(
        "prev => { const r = document.getElementById('rate'); return r.dataset.mode !== 'work' || r.dataset.assignment !== prev; }",
        arg=previous,
    )
    page.wait_for_function("() => document.getElementById('rate').dataset.mode !== 'loading'")


def test_an_annotator_rates_five_answers_with_the_keyboard(page, login, project, site_admin, make_user, add_member):  # noqa: F811
    answers = make_answers(project, ITEMS)
    services.tasks_create(project=project, actor=site_admin, overlap=1)
    rater = make_user("thumbs-rater")
    add_member(project, rater, "annotator")
    given: dict[int, tuple[bool, str]] = {}  # assignment id -> (label, reason) as pressed

    login(page, rater.username, f"/projects/{project.pk}/rate/")
    page.wait_for_selector('#rate[data-mode="work"]')
    assert "<b>politely</b>" not in page.inner_html("#rt-work")  # user text is escaped, never live HTML

    for index in range(6):
        text = _current_answer(page)
        assignment = page.get_attribute("#rate", "data-assignment")
        if index == 0:
            assert page.inner_text("#rt-answer strong") == "4"  # markdown rendered (sanitised by the server)
        if index == 2:
            # A reload in the middle: the same answer comes back (the lease is the annotator's).
            page.reload()
            page.wait_for_selector('#rate[data-mode="work"]')
            assert page.get_attribute("#rate", "data-assignment") == assignment and _current_answer(page) == text
        if index == 4:
            page.keyboard.press("s")
            _wait_for_next(page, assignment)
            continue
        label = is_good(text)
        assert page.is_disabled("#rt-submit")
        page.keyboard.press("1" if label else "2")
        assert page.get_attribute("#rt-up" if label else "#rt-down", "aria-pressed") == "true"
        reason = ""
        if index == 1:
            reason = "just numbers"
            page.keyboard.press("r")
            page.keyboard.type(reason)
            page.keyboard.press("Escape")  # leaves the box; Enter then submits
        page.keyboard.press("Enter")
        _wait_for_next(page, assignment)
        given[int(assignment)] = (label, reason)

    page.wait_for_selector('#rate[data-mode="empty"]')
    # The counters are the server's: they count the ratings given before the reload too.
    page.wait_for_function("() => document.getElementById('rt-rated').textContent === '5'")
    assert page.inner_text("#rt-skipped") == "1" and page.inner_text("#rt-remaining") == "1"  # the skipped answer
    stored = {r.assignment_id: (r.label, r.reason) for r in Rating.objects.all()}
    assert stored == given and len(stored) == 5
    assert all(r.time_spent_ms is not None for r in Rating.objects.all())
    assert {a.pk for a in answers} >= {r.task.response_id for r in Rating.objects.all()}
