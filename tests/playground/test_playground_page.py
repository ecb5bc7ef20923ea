"""The playground page in headless Chromium: pick two versions, send a message, watch both
answers stream in side by side, rate them thumbs up and down from the keyboard, and save the
conversation as a red-team prompt."""

from __future__ import annotations

import pytest

from feedback_site.annotation.models import Prompt

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_playground_page_chats_side_by_side_and_saves(page, login, live_server, site_admin, playground_project, start_playground_worker):
    project, base, lora = playground_project
    start_playground_worker()
    path = f"/projects/{project.pk}/playground/"
    login(page, site_admin.username, path)
    page.select_option("#pg-version-a", str(base.pk))
    page.select_option("#pg-version-b", str(lora.pk))
    page.fill("#pg-system", "Be brief.")
    page.fill("#pg-max_new_tokens", "24")
    page.fill("#pg-input", "Hello there")
    page.click("#pg-send")
    lanes = page.locator(".pg-lane")
    lanes.first.wait_for()
    assert lanes.count() == 2
    done = page.locator('.pg-msg.assistant[data-status="done"]')
    done.nth(1).wait_for(timeout=60_000)
    assert page.locator(".pg-msg.user").count() == 2
    # The chat keeps the versions it started with; the pickers stay usable and say that changing
    # them starts a new chat.
    assert not page.locator("#pg-version-a").is_disabled() and page.locator("#pg-settings-note").is_visible()
    # Thumbs from the keyboard: Tab to a button, Enter records the rating at once.
    first, second = done.nth(0), done.nth(1)
    first.locator('.pg-thumb[data-label="true"]').focus()
    page.keyboard.press("Enter")
    first.locator('.pg-thumb[data-label="true"][aria-pressed="true"]').wait_for()
    second.locator('.pg-thumb[data-label="false"]').focus()
    page.keyboard.press("Enter")
    second.locator('.pg-thumb[data-label="false"][aria-pressed="true"]').wait_for()
    from feedback_site.ratings.models import AnswerRating

    ratings = {r.model_version_id: r.label for r in AnswerRating.objects.filter(project=project, rater=site_admin)}
    assert ratings == {base.pk: True, lora.pk: False}
    assert all(r.conversation[-1] == {"role": "user", "content": "Hello there"} for r in AnswerRating.objects.all())
    page.click("#pg-save-redteam")
    page.wait_for_selector("#pg-saved:has-text('red-team prompt')")
    prompt = Prompt.objects.get(project=project, metadata__source="playground")
    assert prompt.split == "eval" and prompt.metadata["red_team"] is True and prompt.text == "Hello there"
    page.select_option("#pg-version-b", "")  # a new choice: the chat on screen ends, the next message starts another
    assert page.locator(".pg-lane").count() == 0 and not page.locator("#pg-settings-note").is_visible()
