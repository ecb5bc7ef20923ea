"""Round rules on the real database, without workers: settings validation, the automatic
promotion rule, the claim that makes advancing idempotent, and the round page."""

from __future__ import annotations

import pytest
from django.utils import timezone

from feedback_site.annotation.models import Pair, PairSource, Prompt, Response
from feedback_site.core.audit import AuditEntry
from feedback_site.core.errors import Invalid
from feedback_site.evaluation.models import EvaluationRun, EvaluationStatus
from feedback_site.generation.models import GenerationRun, RunStatus
from feedback_site.loop import services
from feedback_site.loop.models import Round, Stage
from feedback_site.projects.models import Project

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "config, field",
    [
        ({"nope": 1}, "nope"),
        ({"method": "sft"}, "method"),
        ({"promotion": "sometimes"}, "promotion"),
        ({"k": 1}, "k"),
        ({"training": {"learning_rate": -1}}, "learning_rate"),
        ({"rounds": 0}, "rounds"),
        ({"evaluation": {"max_prompts": 0}}, "max_prompts"),
    ],
)
def test_bad_round_settings_name_the_field(config, field):
    with pytest.raises(Invalid) as error:
        services.round_config(config)
    assert field in error.value.message and error.value.status_code == 400


def make_round(project, staff, policies, **fields) -> Round:
    base, _ = policies
    return Round.objects.create(
        project=project,
        number=Round.objects.filter(project=project).count() + 1,
        config=services.round_config({}),
        policy=base,
        created_by=staff,
        **fields,
    )


def evaluation(project, policy, baseline, low, status=EvaluationStatus.SUCCEEDED):
    return EvaluationRun.objects.create(
        project=project,
        policy=policy,
        baseline=baseline,
        config={},
        launch_key=f"k{low}",
        status=status,
        results={"win_rate": {"win_rate": low + 0.1, "low": low, "high": low + 0.2}},
    )


def test_automatic_promotion_needs_the_lower_bound_above_half(project, staff, policies):
    base, new = policies
    rnd = make_round(project, staff, policies, stage=Stage.PROMOTE, output_version=new)
    assert services.auto_promotion_decision(rnd) is None  # nothing judged: a person decides
    rnd.evaluation_run = evaluation(project, new, base, 0.5)
    assert services.auto_promotion_decision(rnd) is False
    rnd.evaluation_run = evaluation(project, new, base, 0.56)
    assert services.auto_promotion_decision(rnd) is True
    rnd.save()

    rnd = services.round_advance(round_id=rnd.pk)
    assert rnd.stage == Stage.DONE and rnd.promoted is True
    assert Project.objects.get(pk=project.pk).current_policy == new
    entry = AuditEntry.objects.filter(action="version.promote").latest("id")
    assert entry.actor is None and entry.details["automatic"] is True


def test_a_lower_bound_at_half_keeps_the_current_policy(project, staff, policies):
    base, new = policies
    rnd = make_round(project, staff, policies, stage=Stage.PROMOTE, output_version=new, evaluation_run=evaluation(project, new, base, 0.48))
    rnd = services.round_advance(round_id=rnd.pk)
    assert rnd.stage == Stage.DONE and rnd.promoted is False
    assert Project.objects.get(pk=project.pk).current_policy == base


def test_advancing_is_claimed_so_a_second_caller_does_nothing(project, staff, policies):
    base, _ = policies
    prompt = Prompt.objects.create(project=project, text="hi")
    run = GenerationRun.objects.create(
        project=project,
        policy=base,
        prompt_ids=[prompt.pk],
        k=2,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        max_new_tokens=8,
        seed=0,
        config_hash="x",
        status=RunStatus.SUCCEEDED,
        pair_count=1,
        response_count=2,
    )
    a = Response.objects.create(prompt=prompt, text="a", generation_run=run)
    b = Response.objects.create(prompt=prompt, text="b", generation_run=run)
    Pair.objects.create(
        project=project, prompt=prompt, response_a=a, response_b=b, overlap=1, source=PairSource.GENERATED, generation_run=run
    )
    rnd = make_round(project, staff, policies, generation_run=run)

    Round.objects.filter(pk=rnd.pk).update(claimed_at=timezone.now())  # someone else is advancing it
    assert services.round_advance(round_id=rnd.pk).stage == Stage.GENERATE
    Round.objects.filter(pk=rnd.pk).update(claimed_at=None)
    rnd = services.round_advance(round_id=rnd.pk)
    # generation done -> annotate; people have not judged the pair yet, so it waits there
    assert rnd.stage == Stage.ANNOTATE and rnd.claimed_at is None
    history = len(rnd.history)
    assert services.round_advance(round_id=rnd.pk).stage == Stage.ANNOTATE
    assert len(Round.objects.get(pk=rnd.pk).history) == history
    # a stale claim (a worker died mid-advance) is taken over
    Round.objects.filter(pk=rnd.pk).update(claimed_at=timezone.now() - timezone.timedelta(seconds=services.CLAIM_SECONDS + 5))
    assert services.round_advance(round_id=rnd.pk).claimed_at is None


def test_manual_decision_and_the_round_page(project, staff, policies, annotator, client):
    base, new = policies
    rnd = make_round(project, staff, policies, stage=Stage.PROMOTE, output_version=new)
    rnd.config = {**rnd.config, "promotion": "manual"}
    rnd.save()
    assert services.round_advance(round_id=rnd.pk).stage == Stage.PROMOTE  # waits for a person
    client.force_login(staff)
    page = client.get(f"/rounds/{rnd.pk}/").content.decode()
    assert 'data-stage="generate"' in page and f"Promote {new.label}" in page
    response = client.post(f"/rounds/{rnd.pk}/", {"action": "promote", "reason": "looks good"})
    assert response.status_code == 302
    rnd.refresh_from_db()
    assert rnd.stage == Stage.DONE and rnd.promoted and Project.objects.get(pk=project.pk).current_policy == new
    client.force_login(annotator)
    assert client.get(f"/rounds/{rnd.pk}/").status_code in (403, 404)
    assert client.get(f"/projects/{project.pk}/loop/").status_code in (403, 404)


@pytest.mark.parametrize(("method", "reward_first"), [("kto", False), ("dpo", False), ("grpo", True)])
def test_the_train_stage_trains_a_reward_model_first_only_for_reward_methods(project, staff, policies, monkeypatch, method, reward_first):
    """A round can learn with KTO (from the round's pair snapshot, no reward model), like DPO."""
    import json

    from feedback_site.annotation.imports import import_file
    from feedback_site.snapshots.services import snapshot_create
    from feedback_site.training import services as training_services
    from feedback_site.training.models import TrainingRun

    monkeypatch.setattr(training_services, "enqueue", lambda *args, **options: "task-id")
    lines = [{"prompt": f"Topic {i}?", "response_a": f"good {i}", "response_b": f"bad {i}", "preferred": "a"} for i in range(6)]
    import_file(project=project, actor=staff, kind="pairs", filename="p.jsonl", data="\n".join(json.dumps(x) for x in lines).encode())
    snapshot, _ = snapshot_create(project=project, actor=staff)
    config = services.round_config({"method": method})
    assert bool(config["reward_training"]) == reward_first
    rnd = make_round(project, staff, policies, stage=Stage.TRAIN, snapshot=snapshot)
    Round.objects.filter(pk=rnd.pk).update(config=config)

    rnd = services.round_advance(round_id=rnd.pk)
    assert rnd.stage == Stage.TRAIN, rnd.message
    launched = list(TrainingRun.objects.filter(project=project).values_list("method", flat=True))
    assert launched == (["reward"] if reward_first else [method])
    assert (rnd.reward_run_id is not None) == reward_first and (rnd.training_run_id is not None) != reward_first
