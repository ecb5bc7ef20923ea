"""Each annotator task page on a 1366×768 screen (the commonest laptop): with long texts and a
project with criteria, the controls that record the choice are inside the viewport without
scrolling, and on the pairs page the sticky choice bar never covers the criteria or the rationale.
A screenshot of each page is written under $FEEDBACK_VAR_DIR/screenshots/ (never committed) for a
person to look at."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.browser.conftest import _fast_password_hashing, login, page  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH, HEIGHT = 1366, 768
LONG = "It depends on the soil, the light and the season; " * 14
BOXES = "els => els.filter(e => e.offsetParent !== null).map(e => e.getBoundingClientRect().toJSON())"


def _screens() -> Path:
    folder = Path(os.environ.get("FEEDBACK_VAR_DIR") or "/tmp") / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _assert_inside(page, selectors: list[str], kind: str) -> None:
    page.screenshot(path=str(_screens() / f"task-{kind}-1366x768.png"))
    for selector in selectors:
        boxes = page.eval_on_selector_all(selector, BOXES)
        assert boxes, f"{kind}: {selector} is not shown"
        for box in boxes:
            assert box["top"] >= 0 and box["left"] >= 0 and box["bottom"] <= HEIGHT and box["right"] <= WIDTH, (kind, selector, box)


@pytest.fixture
def fit(page, login, make_project, make_user, add_member):  # noqa: F811
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    project = make_project(
        "Fit",
        criteria=["helpful", "honest", "harmless"],
        guidelines="Prefer the **correct** answer.",
        base_policy_uri="builtin:smollm2-135m-instruct",
    )
    annotator = make_user("fit-annotator")
    add_member(project, annotator, "annotator")
    return SimpleNamespace(page=page, project=project, annotator=annotator, open=lambda path: login(page, annotator.username, path))


def test_pairs_page_fits(fit, make_pairs):
    make_pairs(fit.project, 2, overlap=1, texts=lambda i: (f"Grow them in spring. {LONG}", f"Grow them in autumn. {LONG}"))
    fit.project.prompts.update(text="How and when should I plant tulip bulbs in a small garden with clay soil? " * 3)
    fit.open(f"/projects/{fit.project.pk}/annotate/")
    page = fit.page
    page.wait_for_selector('#annotate[data-mode="work"]')
    _assert_inside(page, ["#an-controls button", "#an-submit", "#an-skip", "#an-prompt", "#an-pane-left", "#an-pane-right"], "pairs")
    bar_top = page.eval_on_selector("#an-bar", "e => e.getBoundingClientRect().top")
    # Tab to the first criterion and to the rationale, as a keyboard user does: what gets focus
    # scrolls into view above the sticky bar, never under it.
    for selector, focus in (("#an-criteria-group", "#an-criteria :is(input, button, select)"), ("#an-rationale", "#an-rationale")):
        page.eval_on_selector(focus, "e => e.focus()")
        page.wait_for_timeout(100)
        bar_top = page.eval_on_selector("#an-bar", "e => e.getBoundingClientRect().top")
        box = page.eval_on_selector(selector, "e => e.getBoundingClientRect().toJSON()")
        assert box["bottom"] <= bar_top + 1, f"the choice bar (top {bar_top}) covers {selector} {box}"


def test_ratings_page_fits(fit, site_admin):
    from feedback_site.ratings import services
    from tests.ratings.helpers import make_answers

    make_answers(fit.project, [("How should I water a fern that lives in a dark bathroom? " * 3, LONG)])
    services.tasks_create(project=fit.project, actor=site_admin, overlap=1)
    fit.open(f"/projects/{fit.project.pk}/rate/")
    fit.page.wait_for_selector('#rate[data-mode="work"]')
    _assert_inside(fit.page, ["#rt-up", "#rt-down", "#rt-submit", "#rt-skip"], "ratings")


def test_rankings_page_fits(fit, site_admin):
    from feedback_site.rankings import services
    from tests.rankings.helpers import make_answer_set

    ids = make_answer_set(
        fit.project, "Which houseplant suits a north-facing window?", ["A fern.", LONG, "A snake plant. " * 20, "Cactus."]
    )
    services.tasks_create(project=fit.project, actor=site_admin, answer_sets=[ids], overlap=1)
    fit.open(f"/projects/{fit.project.pk}/rank/")
    fit.page.wait_for_selector('#rank[data-mode="work"]')
    _assert_inside(fit.page, [".rk-answer .rk-rank select", "#rk-submit"], "rankings")


def test_demonstrations_page_fits(fit, site_admin):
    from feedback_site.annotation.models import Prompt, Response
    from feedback_site.demonstrations import services

    prompt = Prompt.objects.create(project=fit.project, text="Explain how to repot an orchid. " * 4)
    Response.objects.create(prompt=prompt, text=LONG, sample_index=0)
    services.tasks_create(project=fit.project, actor=site_admin, mode="correct", overlap=1)
    fit.open(f"/projects/{fit.project.pk}/demonstrate/")
    fit.page.wait_for_selector('#demonstrate[data-mode="work"]')
    _assert_inside(fit.page, ["#dm-text", "#dm-submit", "#dm-skip"], "demonstrations")


def test_conversations_page_fits(fit, site_admin, monkeypatch):
    from feedback_site.conversations import generation, services
    from feedback_site.conversations.models import BranchPoint
    from workers.celery_app import app

    # No worker here: the candidates of the first turn are stored directly, as a worker would.
    monkeypatch.setattr(app, "send_task", lambda name, *a, **kw: SimpleNamespace(id=f"fit-{name}"))
    conversation = {
        "messages": [
            {"role": "system", "content": "You are a patient gardener."},
            {"role": "user", "content": "Plan a vegetable patch. " * 5},
        ],
        "followups": ["What first?", "And then?"],
    }
    services.tasks_create(project=fit.project, actor=site_admin, conversations=[conversation], turns=2, candidates=3, overlap=1)
    fit.open(f"/projects/{fit.project.pk}/converse/")
    page = fit.page
    page.wait_for_function("() => document.getElementById('converse').dataset.mode !== 'loading'")
    branch_point = BranchPoint.objects.get()
    if branch_point.status != "ready":
        generation.generation_start(branch_point_id=branch_point.pk)
        generation.candidates_store(branch_point_id=branch_point.pk, texts=[f"Reply {i}: {LONG}" for i in range(3)])
    page.wait_for_function(
        "() => { const r = document.getElementById('converse'); return r.dataset.mode === 'work' && r.dataset.status === 'ready'; }",
        timeout=20_000,
    )
    _assert_inside(page, ["#cv-submit", "#cv-replies li:first-child"], "conversations")
