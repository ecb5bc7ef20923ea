"""The annotator page in headless Chromium against a live server and the real database.

What is shown here: keyboard-only annotation end to end (and the stored left/right order),
hostile model output staying inert, drafts surviving a reload, skip, a lost lease (409) and a
network failure on submit that is retried without storing twice, and lease renewal.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from feedback_site.annotation import services
from feedback_site.annotation.models import Assignment, AssignmentStatus, Judgment, Pair, PairSource, Prompt, Response

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-123"


def page_path(project) -> str:
    return f"/projects/{project.pk}/annotate/"


def wait_for_pair(page, previous: int | None = None) -> int:
    """Wait until the page shows a pair other than `previous`; return its assignment id."""
    page.wait_for_function(
        """prev => {
            const root = document.getElementById('annotate');
            return root.dataset.mode === 'work' && root.dataset.assignment && root.dataset.assignment !== prev;
        }""",
        arg="" if previous is None else str(previous),
    )
    return int(page.get_attribute("#annotate", "data-assignment"))


def expected_preference(choice: str, swapped: bool) -> str:
    if choice in ("tie", "both_bad"):
        return choice
    shown_left_is_a = not swapped
    return "a" if (choice == "left") == shown_left_is_a else "b"


@pytest.fixture
def member(make_user, add_member):
    def make(project, username: str, role: str = "annotator"):
        user = make_user(username, password=PASSWORD)
        add_member(project, user, role)
        return user

    return make


def test_keyboard_only_three_judgments(page, login, make_project, member, make_pairs):
    project = make_project("Keyboard", criteria=["helpful", "harmless"], guidelines="Prefer the **correct** answer.")
    user = member(project, "kbd")
    make_pairs(project, 3, texts=lambda i: (f"Alpha answer {i}", f"Beta answer {i}"))

    login(page, "kbd", page_path(project))
    # From here on: keyboard only, no clicks.
    keys = page.keyboard

    shown: dict[int, tuple[str, str]] = {}

    def remember(aid):
        shown[aid] = (page.inner_text("#an-left").strip(), page.inner_text("#an-right").strip())

    # 1: left, clearly better, criteria helpful=left, harmless=right.
    first = wait_for_pair(page)
    remember(first)
    expect(page.locator("#an-guideline")).to_contain_text("version 1")
    keys.press("1")
    keys.press("w")
    keys.press("z")
    keys.press("x")
    expect(page.locator('[data-choice="left"]')).to_have_attribute("aria-pressed", "true")
    expect(page.locator('[data-strength="clear"]')).to_have_attribute("aria-pressed", "true")
    keys.press("Enter")

    # 2: right, with a rationale whose letters and digits are shortcut keys: typing them must not
    # change the answer or skip; Escape leaves the box and Enter submits.
    second = wait_for_pair(page, first)
    remember(second)
    keys.press("2")
    keys.press("r")
    keys.type("s1 q? 4 makes sense")
    expect(page.locator("#an-rationale")).to_have_value("s1 q? 4 makes sense")
    expect(page.locator('[data-choice="right"]')).to_have_attribute("aria-pressed", "true")
    keys.press("Escape")
    keys.press("Enter")

    # 3: tie. Q is refused for a tie (strength needs a side) and says so.
    third = wait_for_pair(page, second)
    remember(third)
    keys.press("3")
    keys.press("q")
    expect(page.locator("#an-status")).to_contain_text("Strength applies")
    keys.press("Enter")

    expect(page.locator("#an-empty")).to_be_visible()
    expect(page.locator("#an-empty")).to_contain_text("Nothing left to annotate — thank you")
    expect(page.locator("#an-judged")).to_have_text("3")

    judgments = list(
        Judgment.objects.filter(annotator=user).select_related("assignment", "pair__response_a", "pair__response_b").order_by("id")
    )
    assert len(judgments) == 3
    assert [j.assignment_id for j in judgments] == [first, second, third]
    planned = [
        ("left", "clear", "", {"helpful": "left", "harmless": "right"}),
        ("right", "", "s1 q? 4 makes sense", {}),
        ("tie", "", "", {}),
    ]
    for judgment, (choice, strength, rationale, criteria) in zip(judgments, planned):
        a, b = judgment.pair.response_a.text, judgment.pair.response_b.text
        # The page showed the order stored with the assignment and the judgment.
        assert judgment.swapped == judgment.assignment.swapped
        assert shown[judgment.assignment_id] == ((b, a) if judgment.swapped else (a, b))
        assert judgment.choice == choice
        assert judgment.preferred == expected_preference(choice, judgment.swapped)
        assert judgment.strength == strength
        assert judgment.rationale == rationale
        assert judgment.criteria == {k: expected_preference(v, judgment.swapped) for k, v in criteria.items()}
        assert judgment.time_spent_ms is not None and judgment.time_spent_ms > 0
        assert judgment.guideline_version is not None and judgment.guideline_version.number == 1
    assert Assignment.objects.filter(annotator=user, status=AssignmentStatus.SUBMITTED).count() == 3


HOSTILE = '<script>window.__xss=1</script>\n\n<img src=x onerror="window.__xss=2">\n\n[x](javascript:window.__xss=3)'


def test_hostile_response_is_inert(page, login, make_project, member):
    project = make_project("XSS", criteria=['<img src=x onerror="window.__xss=4">'])
    member(project, "victim")
    prompt = Prompt.objects.create(
        project=project,
        text="Repeat this: <script>window.__xss=5</script>",
        system_prompt='<img src=x onerror="window.__xss=6">',
        history=[
            {"role": "user", "content": "<script>window.__xss=7</script>"},
            {"role": '<img src=x onerror="window.__xss=8">', "content": "[y](javascript:window.__xss=9)"},
        ],
    )
    hostile = Response.objects.create(prompt=prompt, text=HOSTILE)
    benign = Response.objects.create(prompt=prompt, text="A normal answer.", sample_index=1)
    Pair.objects.create(project=project, prompt=prompt, response_a=hostile, response_b=benign, overlap=1, source=PairSource.IMPORTED)

    dialogs: list[str] = []

    def on_dialog(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    login(page, "victim", page_path(project))
    wait_for_pair(page)

    pane = page.locator("#an-left") if "window.__xss=1" in page.inner_text("#an-left") else page.locator("#an-right")
    # The literal text is shown...
    expect(pane).to_contain_text("<script>window.__xss=1</script>")
    expect(pane).to_contain_text('<img src=x onerror="window.__xss=2">')
    expect(pane).to_contain_text("[x](javascript:window.__xss=3)")
    expect(pane.get_by_text("<script>window.__xss=1</script>")).to_be_visible()
    expect(page.locator("#an-system-text")).to_have_text('<img src=x onerror="window.__xss=6">')
    expect(page.locator("#an-criteria")).to_contain_text('<img src=x onerror="window.__xss=4">')
    # ...and none of it became markup anywhere on the page.
    assert page.locator("#an-left script, #an-right script, #an-left img, #an-right img").count() == 0
    assert page.locator("#annotate script, #annotate img, #annotate [onerror]").count() == 0
    assert page.locator('#annotate a[href^="javascript"]').count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"

    # Clicking the would-be link (and any link the panes do contain) runs nothing.
    url_before = page.url
    pane.get_by_text("[x](javascript:window.__xss=3)").click()
    page.get_by_text("[y](javascript:window.__xss=9)").click()
    for link in pane.locator("a").all():
        link.click()
    page.wait_for_timeout(200)
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.url == url_before
    assert dialogs == []


def test_reload_restores_pair_and_draft(page, login, make_project, member, make_pairs):
    project = make_project("Reload", criteria=["helpful"])
    user = member(project, "reloader")
    make_pairs(project, 2)
    login(page, "reloader", page_path(project))

    aid = wait_for_pair(page)
    left_before = page.inner_text("#an-left")
    keys = page.keyboard
    keys.press("2")
    keys.press("e")
    keys.press("c")
    keys.press("r")
    keys.type("half-written thought")
    keys.press("Escape")

    page.reload()
    assert wait_for_pair(page) == aid
    assert page.inner_text("#an-left") == left_before
    expect(page.locator('[data-choice="right"]')).to_have_attribute("aria-pressed", "true")
    expect(page.locator('[data-strength="much"]')).to_have_attribute("aria-pressed", "true")
    expect(page.locator('[data-criterion="helpful"][data-vote="tie"]')).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#an-rationale")).to_have_value("half-written thought")
    expect(page.locator("#an-status")).to_contain_text("restored")

    keys.press("Enter")
    second = wait_for_pair(page, aid)
    judgment = Judgment.objects.get(annotator=user)
    assert judgment.assignment_id == aid
    assert (judgment.choice, judgment.strength, judgment.rationale) == ("right", "much", "half-written thought")
    assert judgment.criteria == {"helpful": "tie"}
    # The submitted draft is gone; the next pair starts clean.
    assert page.evaluate(f"localStorage.getItem('annotate:draft:{project.pk}:{aid}')") is None
    assert second != aid
    expect(page.locator('[data-choice="right"]')).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#an-rationale")).to_have_value("")


def test_skip_gives_another_pair_and_it_never_comes_back(page, login, make_project, member, make_pairs):
    project = make_project("Skip")
    user = member(project, "skipper")
    make_pairs(project, 2)
    login(page, "skipper", page_path(project))

    first = wait_for_pair(page)
    page.keyboard.press("s")
    second = wait_for_pair(page, first)
    first_pair = Assignment.objects.get(pk=first).pair_id
    assert Assignment.objects.get(pk=second).pair_id != first_pair
    expect(page.locator("#an-skipped")).to_have_text("1")

    page.keyboard.press("s")
    expect(page.locator("#an-empty")).to_be_visible()
    # Both pairs still need judgments, but not from this annotator: a reload stays empty.
    page.reload()
    expect(page.locator("#an-empty")).to_be_visible()
    expect(page.locator("#an-skipped")).to_have_text("2")
    assert set(Assignment.objects.filter(annotator=user).values_list("status", flat=True)) == {AssignmentStatus.SKIPPED}
    assert not Judgment.objects.filter(annotator=user).exists()
    assert Pair.objects.filter(project=project, is_complete=False).count() == 2


def test_lost_lease_shows_the_server_reason_and_moves_on(page, login, make_project, member, make_pairs):
    project = make_project("Late")
    user = member(project, "slow")
    other = member(project, "fast")
    make_pairs(project, 2)
    login(page, "slow", page_path(project))

    aid = wait_for_pair(page)
    page.keyboard.press("1")
    # Meanwhile the lease runs out and another annotator takes the pair and completes it.
    Assignment.objects.filter(pk=aid).update(expires_at=timezone.now() - timedelta(seconds=1))
    leased = services.assignment_next(project=project, annotator=other)
    assert leased.assignment.pair_id == Assignment.objects.get(pk=aid).pair_id
    services.judgment_submit(assignment_id=leased.assignment.pk, annotator=other, choice="left")

    page.keyboard.press("Enter")
    wait_for_pair(page, aid)
    expect(page.locator("#an-status")).to_contain_text("your answer was not stored")
    assert not Judgment.objects.filter(annotator=user).exists()


def test_network_error_keeps_draft_and_retry_stores_once(page, login, make_project, member, make_pairs):
    project = make_project("Flaky")
    user = member(project, "flaky")
    make_pairs(project, 2)
    login(page, "flaky", page_path(project))
    aid = wait_for_pair(page)

    attempts = []

    def lose_the_answer(route):
        # The request reaches the server and is stored, but the reply never reaches the page:
        # the worst case for a retry.
        attempts.append(route.request.post_data_json)
        route.fetch()
        route.abort("connectionreset")

    page.route("**/judgment", lose_the_answer)
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    # The intercepted request makes a real round trip to the live server first (route.fetch), which
    # on a loaded CI machine can take longer than expect()'s 5 s default.
    expect(page.locator("#an-status")).to_contain_text("Network error", timeout=20_000)
    assert page.get_attribute("#annotate", "data-assignment") == str(aid)
    expect(page.locator('[data-choice="right"]')).to_have_attribute("aria-pressed", "true")
    assert page.evaluate(f"JSON.parse(localStorage.getItem('annotate:draft:{project.pk}:{aid}')).choice") == "right"
    assert len(attempts) == 1 and attempts[0]["choice"] == "right"

    page.unroute("**/judgment")
    page.keyboard.press("Enter")
    wait_for_pair(page, aid)
    expect(page.locator("#an-status")).to_contain_text("Saved", timeout=20_000)
    assert Judgment.objects.filter(annotator=user).count() == 1
    assert Judgment.objects.get(annotator=user).choice == "right"


def test_lease_is_renewed_while_the_page_is_open(page, login, make_project, member, make_pairs):
    project = make_project("Renew", lease_seconds=30)
    member(project, "stayer")
    make_pairs(project, 1)
    page.clock.install()
    login(page, "stayer", page_path(project))
    aid = wait_for_pair(page)
    expires_before = Assignment.objects.get(pk=aid).expires_at

    with page.expect_response(lambda r: r.url.endswith(f"/assignments/{aid}/renew") and r.request.method == "POST") as info:
        page.clock.run_for(11_000)  # lease_seconds / 3 = 10 s
    assert info.value.status == 200
    assert Assignment.objects.get(pk=aid).expires_at > expires_before


def test_time_spent_excludes_hidden_tab_time(page, login, make_project, member, make_pairs):
    project = make_project("Timing")
    user = member(project, "timer")
    make_pairs(project, 1)
    login(page, "timer", page_path(project))
    wait_for_pair(page)

    def set_visibility(state: str):
        page.evaluate(
            """state => {
                Object.defineProperty(document, 'visibilityState', {value: state, configurable: true});
                document.dispatchEvent(new Event('visibilitychange'));
            }""",
            state,
        )

    set_visibility("hidden")
    page.wait_for_timeout(2_000)  # the annotator is in another tab
    set_visibility("visible")
    page.keyboard.press("4")
    page.keyboard.press("Enter")
    expect(page.locator("#an-empty")).to_be_visible()
    judgment = Judgment.objects.get(annotator=user)
    assert judgment.choice == "both_bad" and judgment.preferred == "both_bad" and judgment.strength == ""
    assert 0 < judgment.time_spent_ms < 1_500


def test_paused_annotator_sees_why_and_gets_no_pair(page, login, make_project, member, make_pairs, site_admin):
    project = make_project("Paused")
    user = member(project, "paused-one")
    make_pairs(project, 2)
    services.membership_pause(project=project, user=user, reason="gold accuracy 1/10 = 10% is below 70%", actor=site_admin)

    login(page, "paused-one", page_path(project))
    page.wait_for_function("() => document.getElementById('annotate').dataset.mode === 'paused'")
    expect(page.locator("#an-paused")).to_be_visible()
    expect(page.locator("#an-paused-text")).to_contain_text("gold accuracy 1/10 = 10% is below 70%")
    expect(page.locator("#an-work")).to_be_hidden()
    assert not Assignment.objects.filter(annotator=user).exists()

    # After an admin lifts the pause, a reload gets work again.
    services.membership_unpause(project=project, user=user, actor=site_admin)
    page.reload()
    wait_for_pair(page)
