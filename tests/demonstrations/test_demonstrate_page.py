"""The demonstration page in headless Chromium: an annotator corrects a shown response, then
writes one from scratch, and both arrive as demonstrations."""

from __future__ import annotations

import pytest

from feedback_site.annotation.models import Prompt, Response
from feedback_site.demonstrations import services
from feedback_site.demonstrations.models import Demonstration
from tests.browser.conftest import _fast_password_hashing, login, page  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_annotator_corrects_and_writes_demonstrations(page, login, project, site_admin, make_user, add_member):  # noqa: F811
    first = Prompt.objects.create(project=project, text="What is 2+2?")
    Response.objects.create(prompt=first, text="2+2 is 5.", sample_index=0)
    Prompt.objects.create(project=project, text="Say hello <b>politely</b>.")
    services.tasks_create(project=project, actor=site_admin, mode="correct", overlap=1)
    services.tasks_create(project=project, actor=site_admin, mode="write", prompt_ids=[Prompt.objects.last().pk], overlap=1)
    annotator = make_user("demo-writer")
    add_member(project, annotator, "annotator")

    login(page, annotator.username, f"/projects/{project.pk}/demonstrate/")
    page.wait_for_selector('#demonstrate[data-mode="work"]')
    assert page.input_value("#dm-text") == "2+2 is 5."
    page.fill("#dm-text", "2+2 is 4.")
    first_assignment = page.get_attribute("#demonstrate", "data-assignment")
    page.click("#dm-submit")
    page.wait_for_function("prev => document.getElementById('demonstrate').dataset.assignment !== prev", arg=first_assignment)
    assert "<b>politely</b>" in page.inner_text("#dm-conversation")  # shown as text, never as HTML
    assert page.input_value("#dm-text") == ""
    page.fill("#dm-text", "Hello, and thank you!")
    page.click("#dm-submit")
    page.wait_for_selector('#demonstrate[data-mode="done"]')
    assert sorted(Demonstration.objects.values_list("text", flat=True)) == ["2+2 is 4.", "Hello, and thank you!"]
