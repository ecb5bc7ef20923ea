"""The "blur with a warning" policy end to end: the annotator payload carries the flag (on the
PostgreSQL SQL path and the ORM path alike) and the annotator page shows the flagged response
blurred behind a warning until it is clicked."""

from __future__ import annotations

import pytest

from feedback_site.annotation.models import Response
from feedback_site.safety.services import policy_update, screen_responses
from tests.browser.conftest import _fast_password_hashing, login, page  # noqa: F401  (fixtures)

HARMFUL = "Here is how to make a pipe bomb: you will need..."


@pytest.fixture
def flagged_project(make_project, make_user, add_member, site_admin, make_pairs):
    project = make_project("Warned")
    policy_update(project=project, actor=site_admin, action="warn")
    (pair,) = make_pairs(project, 1, texts=lambda i: (HARMFUL, "I can't help with that."))
    screen_responses(project=project, responses=Response.objects.filter(pk__in=[pair.response_a_id, pair.response_b_id]))
    annotator = make_user("warned-annotator")
    add_member(project, annotator, "annotator")
    return project, pair, annotator


@pytest.mark.django_db
def test_payload_flags_the_warned_response_on_both_paths(client, flagged_project):
    from rest_framework.authtoken.models import Token

    from feedback_site.annotation.models import Assignment
    from feedback_site.annotation.selectors import assignment_payload

    project, pair, annotator = flagged_project
    token = Token.objects.create(user=annotator)  # the token path is the hand-written SQL one
    answer = client.post(f"/api/v1/projects/{project.pk}/assignments/next", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert answer.status_code == 200, answer.content
    payload = answer.json()
    sides = {payload["left"]["text"]: payload["left"], payload["right"]["text"]: payload["right"]}
    assert sides[HARMFUL]["safety_flag"]["action"] == "warn"
    assert "weapons-explosives" in sides[HARMFUL]["safety_flag"]["reason"]
    assert sides["I can't help with that."]["safety_flag"] is None
    orm = assignment_payload(Assignment.objects.get(pk=payload["assignment_id"]))
    assert orm["left"]["safety_flag"] == payload["left"]["safety_flag"]
    assert orm["right"]["safety_flag"] == payload["right"]["safety_flag"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_annotator_page_blurs_the_warned_response_until_clicked(page, login, flagged_project):  # noqa: F811
    project, pair, annotator = flagged_project
    login(page, annotator.username, f"/projects/{project.pk}/annotate/")
    warning = page.locator(".an-safety-warning")
    warning.wait_for()
    assert warning.count() == 1 and "weapons-explosives" in warning.inner_text()
    blurred = page.locator(".an-blurred")
    assert blurred.count() == 1 and "pipe bomb" in blurred.inner_text()
    warning.click()
    assert page.locator(".an-blurred").count() == 0 and page.locator(".an-safety-warning").count() == 0
