"""Blind human A/B campaigns: both versions answer the evaluation prompts (real tiny models), one
pair per prompt in random A/B order goes to the normal queue, nothing an annotator receives names
a version, and the results count wins/ties/losses of X from the judgments, humans only."""

from __future__ import annotations

import json

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feedback_site.annotation.models import Pair
from feedback_site.core.errors import Invalid
from feedback_site.loop import services
from feedback_site.loop.models import CampaignPair, CampaignStatus
from feedback_site.registry.models import ModelKind
from feedback_site.registry.services import version_register

pytestmark = pytest.mark.django_db

SECRET_NAMES = ("secret-alpha-model", "secret-beta-model")


def api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def two_versions(project, tiny_policy, tmp_path):
    from rlhf.models import make_tiny_model

    other = make_tiny_model(tmp_path / "tiny-other", seed=1)
    x = version_register(
        project=project, kind=ModelKind.POLICY, name=SECRET_NAMES[0], artifact_uri=str(tiny_policy), base_model=str(tiny_policy)
    )
    y = version_register(project=project, kind=ModelKind.POLICY, name=SECRET_NAMES[1], artifact_uri=str(other), base_model=str(other))
    return x, y


@pytest.fixture
def campaign(project, staff, two_versions, eval_prompts, redis_broker):
    from workers.loop_jobs import run_campaign_generation

    x, y = two_versions
    launched = services.campaign_launch(project=project, actor=staff, version_x=x.pk, version_y=y.pk, max_new_tokens=8, seed=3)
    assert launched.status == CampaignStatus.GENERATING
    run_campaign_generation(launched.pk)  # what the gpu worker runs for loop.campaign_responses
    launched.refresh_from_db()
    return launched


def test_campaign_pairs_one_answer_of_each_version_per_prompt_in_random_order(campaign, two_versions, eval_prompts):
    x, y = two_versions
    assert campaign.status == CampaignStatus.ANNOTATING and campaign.pair_count == len(eval_prompts)
    links = list(CampaignPair.objects.filter(campaign=campaign).select_related("pair__response_a", "pair__response_b"))
    for link in links:
        a, b = link.pair.response_a.model_version_id, link.pair.response_b.model_version_id
        assert (a, b) == ((x.pk, y.pk) if link.x_is_a else (y.pk, x.pk))
        assert link.pair.prompt.split == "eval" and link.pair.overlap == 1 and not link.pair.is_complete
    assert {link.x_is_a for link in links} == {True, False}  # both orders occur (seeded)
    # a redelivered generation task changes nothing
    from workers.loop_jobs import run_campaign_generation

    run_campaign_generation(campaign.pk)
    assert Pair.objects.filter(campaign_link__campaign=campaign).count() == len(eval_prompts)


def test_annotator_api_and_page_reveal_no_version(campaign, two_versions, annotator, client):
    x, y = two_versions
    forbidden = [*SECRET_NAMES, x.label, y.label, "model_version", "version", "policy"]
    annotator_api = api(annotator)
    seen = 0
    while True:
        response = annotator_api.post(f"/api/v1/projects/{campaign.project_id}/assignments/next")
        if response.status_code == 204:
            break
        assert response.status_code == 200, response.content
        body = response.content.decode()
        for word in forbidden:
            assert word not in body, f"{word!r} leaked into the annotator payload: {body}"
        payload = json.loads(body)
        submitted = annotator_api.post(f"/api/v1/assignments/{payload['assignment_id']}/judgment", {"choice": "left"}, format="json")
        assert submitted.status_code in (200, 201), submitted.content
        for word in forbidden:
            assert word not in submitted.content.decode()
        seen += 1
    assert seen == campaign.pair_count
    client.force_login(annotator)
    page = client.get(f"/projects/{campaign.project_id}/annotate/").content.decode()
    for word in (*SECRET_NAMES, x.label, y.label):
        assert word not in page


def test_results_count_x_wins_from_human_judgments_only(campaign, annotator, staff, client):
    from feedback_site.annotation.models import Judgment
    from feedback_site.annotation.services import assignment_next, judgment_submit

    # The human always clicks left; whether that is X depends on the pair's order and the swap.
    expected = {"wins": 0, "losses": 0}
    while (leased := assignment_next(project=campaign.project_id, annotator=annotator)) is not None:
        assignment = leased.assignment
        judgment_submit(assignment_id=assignment.pk, annotator=annotator, choice="left")
        x_is_a = CampaignPair.objects.get(pair_id=assignment.pair_id).x_is_a
        left_is_a = not assignment.swapped
        expected["wins" if left_is_a == x_is_a else "losses"] += 1
    # A simulated annotator's judgments on the same pairs stay out of the default results.
    sim = services.simulated_annotator_create(project=campaign.project, actor=staff, name="Bot", rule="shorter", noise=0.0)
    Pair.objects.filter(campaign_link__campaign=campaign).update(overlap=2, is_complete=False)
    from feedback_site.loop.models import SimulationRun

    services.simulation_execute(run_id=SimulationRun.objects.create(annotator=sim, target=100).pk)
    assert Judgment.objects.filter(annotator=sim.user).count() == campaign.pair_count

    results = services.campaign_results(campaign)
    assert (results["wins"], results["ties"], results["losses"]) == (expected["wins"], 0, expected["losses"])
    assert results["judgments"] == campaign.pair_count
    assert results["win_rate"] == pytest.approx(expected["wins"] / campaign.pair_count)
    assert results["win_rate_low"] <= results["win_rate"] <= results["win_rate_high"]
    win = results["shares"]["win"]
    assert win["low"] <= win["share"] <= win["high"]
    assert services.campaign_results(campaign, include_simulated=True)["judgments"] == 2 * campaign.pair_count

    client.force_login(staff)
    page = client.get(f"/campaigns/{campaign.pk}/")
    assert page.status_code == 200 and 'id="wins"' in page.content.decode()
    detail = api(staff).get(f"/api/v1/campaigns/{campaign.pk}/")
    assert detail.status_code == 200 and detail.json()["results"]["wins"] == expected["wins"]
    # annotators cannot read results
    assert api(annotator).get(f"/api/v1/campaigns/{campaign.pk}/").status_code in (403, 404)


def test_wilson_interval_matches_a_hand_computed_case():
    # 8 successes of 10: centre (0.8 + 1.92/10)/(1 + 3.84/10) ... known values 0.4902, 0.9433
    low, high = services.wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert services.wilson_interval(0, 0) == (None, None)


@pytest.mark.parametrize("n", [1, 3, 7, 10, 51])
def test_wilson_interval_contains_the_share_at_the_extremes(n):
    # 0 of 7 used to give a low end of 2.8e-17, above the share of 0.
    low, high = services.wilson_interval(0, n)
    assert low == 0.0 and 0.0 < high < 1.0
    low, high = services.wilson_interval(n, n)
    assert high == 1.0 and 0.0 < low < 1.0


def test_campaign_launch_validates(project, staff, two_versions, eval_prompts, redis_broker):
    x, y = two_versions
    with pytest.raises(Invalid, match="two different"):
        services.campaign_launch(project=project, actor=staff, version_x=x.pk, version_y=x.pk)
    with pytest.raises(Invalid, match="not an evaluation prompt"):
        services.campaign_launch(project=project, actor=staff, version_x=x.pk, version_y=y.pk, prompt_ids=[10**9])
    bad = api(staff).post(
        f"/api/v1/projects/{project.pk}/campaigns/",
        {"version_x_id": x.pk, "version_y_id": y.pk, "sampling": {"temperature": -1}},
        format="json",
    )
    assert bad.status_code == 400 and "temperature" in bad.json()["detail"]
