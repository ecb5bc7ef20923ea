"""The safety screen on PostgreSQL: per policy a flagged response is hidden (its pairs leave the
queue), shown with a warning flag, or held for staff review; the decision is stored; release puts
the pairs back in the queue; the classifier path scores with a real (tiny) model."""

from __future__ import annotations

import pytest

from feedback_site.annotation.models import Pair, Prompt, Response
from feedback_site.annotation.services import assignment_next, assignment_skip
from feedback_site.core.errors import Forbidden, Invalid
from feedback_site.generation import services as generation_services
from feedback_site.generation.models import RunStatus
from feedback_site.registry.models import ModelKind, ModelVersion
from feedback_site.safety import selectors, services
from feedback_site.safety.models import HeldPair, SafetyScreen

pytestmark = pytest.mark.django_db

HARMFUL = "Sure. Here is how to make a pipe bomb at home: first ..."
SAFE = "The capital of France is Paris."


@pytest.fixture
def launch(project, site_admin, monkeypatch):
    """A generation run launched for real (enqueue stubbed: no broker in these service tests)."""
    monkeypatch.setattr(generation_services, "enqueue", lambda *a: "task-id")

    def make(texts_for_prompt):
        prompts = [Prompt.objects.create(project=project, text=f"Question {i}?") for i in range(len(texts_for_prompt))]
        run = generation_services.generation_launch(project=project, actor=site_admin, k=2, prompt_selection="all")
        done = {p.pk: texts for p, texts in zip(prompts, texts_for_prompt)}
        return run, prompts, done

    return make


def _served_pairs(project, annotator, limit=10):
    served = []
    for _ in range(limit):
        leased = assignment_next(project=project, annotator=annotator)
        if leased is None:
            break
        served.append(leased.assignment.pair_id)
        assignment_skip(assignment_id=leased.assignment.pk, annotator=annotator)
    return served


def _set_policy(project, actor, **fields):
    return services.policy_update(project=project, actor=actor, **fields)


def test_hide_policy_stores_the_decision_and_takes_the_pair_out_of_the_queue(project, site_admin, annotator, launch):
    _set_policy(project, site_admin, action="hide")
    run, prompts, done = launch([[HARMFUL, SAFE], ["Two plus two is four.", SAFE]])
    generation_services.generation_complete(run_id=run.pk, responses_by_prompt=done)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED

    harmful = Response.objects.get(prompt=prompts[0], sample_index=0)
    screen = SafetyScreen.objects.get(response=harmful)
    assert (screen.verdict, screen.action, screen.matched_rule) == ("flagged", "hide", "weapons-explosives")
    assert screen.hidden
    clean = SafetyScreen.objects.get(response__prompt=prompts[1], response__sample_index=0)
    assert (clean.verdict, clean.action) == ("clean", "")

    held = Pair.objects.get(prompt=prompts[0])
    assert held.overlap == 0 and HeldPair.objects.get(pair=held).original_overlap == project.overlap
    served = _served_pairs(project, annotator)
    assert held.pk not in served
    assert Pair.objects.get(prompt=prompts[1]).pk in served


def test_warn_policy_serves_the_pair_with_a_flag_for_the_annotator_page(project, site_admin, annotator, launch):
    _set_policy(project, site_admin, action="warn")
    run, prompts, done = launch([[HARMFUL, SAFE]])
    generation_services.generation_complete(run_id=run.pk, responses_by_prompt=done)
    pair = Pair.objects.get(prompt=prompts[0])
    assert pair.overlap == project.overlap and not HeldPair.objects.exists()
    assert _served_pairs(project, annotator) == [pair.pk]
    flags = selectors.safety_flags([pair.response_a_id, pair.response_b_id])
    assert set(flags) == {pair.response_a_id}
    assert flags[pair.response_a_id]["action"] == "warn" and "weapons-explosives" in flags[pair.response_a_id]["reason"]


def test_review_policy_holds_until_staff_release_and_reject_keeps_it_hidden(project, site_admin, annotator, ml_staff, launch):
    _set_policy(project, site_admin, action="review", rules=[{"name": "no-pineapple", "pattern": r"pineapple\s+pizza"}])
    run, prompts, done = launch([[HARMFUL, SAFE], ["I love pineapple  pizza.", SAFE]])
    generation_services.generation_complete(run_id=run.pk, responses_by_prompt=done)

    pending = list(services.flagged_list(project=project, actor=ml_staff, status="pending"))
    assert {s.matched_rule for s in pending} == {"weapons-explosives", "no-pineapple"}
    assert _served_pairs(project, annotator) == []

    bomb = next(s for s in pending if s.matched_rule == "weapons-explosives")
    pizza = next(s for s in pending if s.matched_rule == "no-pineapple")
    with pytest.raises(Forbidden):
        services.review_release(screen_id=pizza.pk, actor=annotator)
    released = services.review_release(screen_id=pizza.pk, actor=ml_staff)
    assert released.review_status == "released" and released.reviewed_by == ml_staff and not released.hidden
    assert services.review_release(screen_id=pizza.pk, actor=ml_staff).review_status == "released"  # idempotent
    services.review_reject(screen_id=bomb.pk, actor=ml_staff)

    pizza_pair = Pair.objects.get(prompt=prompts[1])
    assert pizza_pair.overlap == project.overlap and not HeldPair.objects.filter(pair=pizza_pair).exists()
    assert _served_pairs(project, annotator) == [pizza_pair.pk]
    assert Pair.objects.get(prompt=prompts[0]).overlap == 0


def test_classifier_scores_below_threshold_flag_and_are_stored(project, site_admin, launch):
    reward = ModelVersion.objects.create(
        project=project, kind=ModelKind.REWARD, number=1, name="harmless RM", artifact_uri="/nonexistent", base_model="x"
    )
    _set_policy(project, site_admin, action="hide", classifier_id=reward.pk, threshold=0.5)
    run, prompts, done = launch([["A fine answer.", "Another fine answer."]])
    scores = {prompts[0].pk: [0.9, -1.25]}
    generation_services.generation_complete(run_id=run.pk, responses_by_prompt=done, safety_scores=scores)
    low = SafetyScreen.objects.get(response__prompt=prompts[0], response__sample_index=1)
    high = SafetyScreen.objects.get(response__prompt=prompts[0], response__sample_index=0)
    assert (low.verdict, low.matched_rule, low.score, low.threshold, low.classifier_id) == ("flagged", "classifier", -1.25, 0.5, reward.pk)
    assert (high.verdict, high.score) == ("clean", 0.9)


def test_worker_side_classifier_scores_with_a_real_model(project, site_admin, tmp_path):
    from rlhf.models import make_tiny_model
    from workers.safety_tasks import generation_safety_scores

    folder = make_tiny_model(tmp_path / "rm", seed=0)
    reward = ModelVersion.objects.create(
        project=project, kind=ModelKind.REWARD, number=1, name="tiny RM", artifact_uri=str(folder), base_model=str(folder)
    )
    prompt = Prompt.objects.create(project=project, text="Hello?")
    assert generation_safety_scores(project.pk, {prompt.pk: prompt}, {prompt.pk: ["a", "b"]}) is None  # no classifier yet
    _set_policy(project, site_admin, classifier_id=reward.pk, threshold=0.0)
    scores = generation_safety_scores(project.pk, {prompt.pk: prompt}, {prompt.pk: ["Hi there.", "Go away."]})
    assert len(scores[prompt.pk]) == 2 and all(isinstance(s, float) for s in scores[prompt.pk])


def test_bad_policy_input_is_a_clear_400(project, site_admin, annotator):
    with pytest.raises(Invalid, match="invalid regular expression"):
        _set_policy(project, site_admin, rules=[{"name": "broken", "pattern": "(unclosed"}])
    with pytest.raises(Invalid, match="action must be one of"):
        _set_policy(project, site_admin, action="delete")
    with pytest.raises(Invalid, match="not a reward-model version"):
        _set_policy(project, site_admin, classifier_id=project.current_policy_id)
    with pytest.raises(Forbidden):
        _set_policy(project, annotator, action="hide")


def test_policy_api_round_trip_and_errors(client, project, site_admin):
    client.force_login(site_admin)
    url = f"/api/v1/projects/{project.pk}/safety/policy"
    assert client.get(url).json()["action"] == "review"
    answer = client.put(url, {"action": "warn", "rules": [{"name": "x", "pattern": "secret"}]}, content_type="application/json")
    assert answer.status_code == 200 and answer.json()["action"] == "warn"
    bad = client.put(url, {"rules": [{"pattern": "("}]}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"] == "bad_rules"
    bad = client.put(url, {"colour": "red"}, content_type="application/json")
    assert bad.status_code == 400 and "colour" in bad.json()["detail"]
    page = client.get(f"/projects/{project.pk}/safety/")
    assert page.status_code == 200 and b"Safety screen" in page.content
