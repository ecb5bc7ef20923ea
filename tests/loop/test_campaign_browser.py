"""A blind campaign in headless Chromium: the annotator judges campaign pairs on the normal
annotator page, and neither the page nor any response the browser receives names a version."""

from __future__ import annotations

import pytest

from feedback_site.annotation.models import Judgment, Prompt, Split
from feedback_site.loop import services
from feedback_site.loop.models import Campaign
from feedback_site.registry.models import ModelKind
from feedback_site.registry.services import version_register
from tests.browser.conftest import login, page  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAMES = ("codename-orchid-policy", "codename-basalt-policy")


def test_campaign_pairs_on_the_annotator_page_reveal_no_version(page, login, make_project, make_user, add_member, tmp_path):  # noqa: F811
    project = make_project("Blind")
    user = make_user("blind-annotator")
    add_member(project, user, "annotator")
    x = version_register(project=project, kind=ModelKind.POLICY, name=NAMES[0], artifact_uri=str(tmp_path / "x"), base_model="b")
    y = version_register(project=project, kind=ModelKind.POLICY, name=NAMES[1], artifact_uri=str(tmp_path / "y"), base_model="b")
    prompts = [Prompt.objects.create(project=project, text=f"Held-out question {i}", split=Split.EVAL) for i in range(2)]
    # The generation worker's output, handed to the same service it calls.
    campaign = Campaign.objects.create(
        project=project, name="orchid vs basalt", version_x=x, version_y=y, prompt_ids=[p.pk for p in prompts], sampling={"seed": 0}
    )
    services.campaign_complete(
        campaign_id=campaign.pk,
        responses={
            x.pk: {p.pk: f"Answer one to question {i}." for i, p in enumerate(prompts)},
            y.pk: {p.pk: f"Answer two to question {i}?" for i, p in enumerate(prompts)},
        },
    )

    bodies: list[str] = []
    page.on("response", lambda response: bodies.append(response.text()) if "/api/" in response.url else None)
    login(page, "blind-annotator", f"/projects/{project.pk}/annotate/")
    previous = ""
    for _ in prompts:
        page.wait_for_function(
            "prev => { const r = document.getElementById('annotate'); return r.dataset.mode === 'work' && r.dataset.assignment !== prev; }",
            arg=previous,
        )
        previous = page.get_attribute("#annotate", "data-assignment")
        shown = page.inner_text("#an-left") + page.inner_text("#an-right")
        assert "Answer one" in shown and "Answer two" in shown
        html = page.content()
        for word in (*NAMES, x.label, y.label):
            assert word not in html
        page.keyboard.press("1")
        page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('annotate').dataset.mode === 'empty'")
    assert Judgment.objects.filter(annotator=user).count() == 2
    assert bodies, "the page talked to the API"
    for body in bodies:
        for word in (*NAMES, x.label, y.label, "model_version"):
            assert word not in body
    results = services.campaign_results(campaign)
    assert results["wins"] + results["losses"] == 2
