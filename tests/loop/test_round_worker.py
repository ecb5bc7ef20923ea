"""A whole round through Redis and a real Celery worker process, on tiny models, with a simulated
annotator: generate from the current policy -> simulated judgments through the queue -> snapshot
-> DPO -> evaluation -> promotion (by hand: a tiny random model has no judged win-rate without a
reward model) -> the next round generates from the promoted policy."""

from __future__ import annotations

import pytest

from feedback_site.annotation.models import Judgment, Pair, Prompt, Split
from feedback_site.generation.models import GenerationRun, RunStatus
from feedback_site.loop import services
from feedback_site.loop.models import Round, Stage
from feedback_site.projects.models import Project
from feedback_site.registry.models import ModelKind
from feedback_site.registry.services import project_create
from feedback_site.training.models import TrainingRun
from tests.workers.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROUND_CONFIG = {
    "method": "dpo",
    "k": 2,
    "max_new_tokens": 8,
    "temperature": 1.0,
    "training": {"max_steps": 2, "batch_size": 2, "max_length": 128, "save_steps": 2, "learning_rate": 1e-4},
    "evaluation": {"max_prompts": 2, "max_new_tokens": 8, "adversarial": False, "n_resamples": 100},
    "promotion": "auto",
}


def test_a_round_from_generation_to_promotion_through_a_worker(site_admin, tiny_policy, start_worker, monkeypatch):
    monkeypatch.setenv("LOOP_TICK_SECONDS", "1")
    project = project_create(creator=site_admin, name="Loop", overlap=1, base_policy_uri=str(tiny_policy))
    base = project.current_policy
    for i in range(3):
        Prompt.objects.create(project=project, text=f"Tell me about topic {i}.", split=Split.TRAIN)
        Prompt.objects.create(project=project, text=f"Held-out topic {i}?", split=Split.EVAL)
    sim = services.simulated_annotator_create(project=project, actor=site_admin, name="Asker", rule="ends_with_question", noise=0.1, seed=1)
    worker = start_worker(queues="default,gpu")

    rnd = services.round_start(project=project, actor=site_admin, simulated_annotator=sim, config=ROUND_CONFIG)
    assert rnd.stage == Stage.GENERATE and rnd.policy == base

    def reached(stage):
        current = Round.objects.get(pk=rnd.pk)
        assert current.stage != Stage.FAILED, f"round failed: {current.message}\n{current.history}"
        return current if current.stage == stage else None

    rnd = wait_for(lambda: reached(Stage.PROMOTE), timeout=900, worker=worker, what="the round to reach promotion")
    # every stage ran once, in order, through the worker
    assert rnd.generation_run.status == RunStatus.SUCCEEDED and rnd.generation_run.policy == base
    pairs = Pair.objects.filter(generation_run=rnd.generation_run)
    assert pairs.exists()
    assert Judgment.objects.filter(pair__in=pairs, annotator=sim.user).count() == pairs.count()
    assert rnd.snapshot is not None and rnd.training_run.status == "succeeded"
    assert rnd.output_version.kind == ModelKind.POLICY and rnd.output_version.parent == base
    assert rnd.evaluation_run is not None and rnd.evaluation_run.status in ("succeeded", "failed")
    stages = [h["stage"] for h in rnd.history]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == [
        "generate",
        "annotate",
        "snapshot",
        "train",
        "evaluate",
        "promote",
    ]
    # Without a reward model there is no judged win-rate, so the automatic rule leaves it to a person.
    assert services.auto_promotion_decision(rnd) is None and rnd.promoted is None

    # Advancing again (twice) launches nothing twice.
    counts = (GenerationRun.objects.count(), TrainingRun.objects.count(), rnd.simulation_run_id)
    services.round_advance(round_id=rnd.pk)
    services.round_advance(round_id=rnd.pk)
    rnd.refresh_from_db()
    assert (GenerationRun.objects.count(), TrainingRun.objects.count(), rnd.simulation_run_id) == counts

    rnd = services.round_decide(round=rnd, actor=site_admin, promote=True)
    assert rnd.stage == Stage.DONE and rnd.promoted is True
    assert Project.objects.get(pk=project.pk).current_policy == rnd.output_version

    # The next round generates from the promoted policy.
    second = services.round_start(project=project, actor=site_admin, simulated_annotator=sim, config=ROUND_CONFIG)
    assert second.number == 2 and second.policy == rnd.output_version
    second = wait_for(lambda: reached_second(second.pk), timeout=600, worker=worker, what="round 2's generation")
    assert second.generation_run.policy == rnd.output_version


def reached_second(round_id):
    current = Round.objects.select_related("generation_run").get(pk=round_id)
    assert current.stage != Stage.FAILED, current.message
    return current if current.stage not in (Stage.GENERATE,) else None
