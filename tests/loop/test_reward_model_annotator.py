"""A reward-model-driven simulated annotator (real tiny reward model, real database): without
noise it prefers exactly the response its reward model scores higher, through the same queue."""

from __future__ import annotations

import pytest

from feedback_site.annotation.models import Judgment, Preference
from feedback_site.loop import services
from feedback_site.loop.models import JobStatus, SimulationRun
from feedback_site.registry.models import ModelKind
from feedback_site.registry.services import version_register
from tests.rlhf_training.helpers import write_toy_preferences

pytestmark = pytest.mark.django_db


def test_reward_model_annotator_prefers_the_higher_score(project, staff, make_pairs, tiny_policy, tmp_path):
    from rlhf.scoring import score_pairs
    from rlhf.training import train
    from workers.loop_jobs import run_reward_model_simulation

    data = write_toy_preferences(tmp_path / "toy.jsonl", count=8)
    result = train("reward", data, tiny_policy, tmp_path / "rm", {"max_steps": 2, "batch_size": 2, "max_length": 64, "eval_fraction": 0.0})
    reward = version_register(
        project=project, kind=ModelKind.REWARD, name="tiny rm", artifact_uri=str(result.artifact_dir), base_model=str(tiny_policy)
    )
    pairs = make_pairs(project, 6, overlap=1, texts=lambda i: (f"kind words {i}", f"{i * 37} {i * 11}"))
    sim = services.simulated_annotator_create(project=project, actor=staff, name="RM", rule="reward_model", noise=0.0, reward_model=reward)

    run = SimulationRun.objects.create(annotator=sim, target=6)
    run_reward_model_simulation(run.pk)  # what the gpu worker runs for loop.simulate_judgments_with_reward_model
    run.refresh_from_db()
    assert (run.status, run.done) == (JobStatus.SUCCEEDED, 6)
    scores = score_pairs(result.artifact_dir, [(p.prompt.messages(), p.response_a.text, p.response_b.text) for p in pairs], device="cpu")
    for pair, (a, b) in zip(pairs, scores):
        expected = Preference.A if a > b else Preference.B
        if a == b:
            continue  # a coin decides exact ties
        assert Judgment.objects.get(pair=pair, annotator=sim.user).preferred == expected
