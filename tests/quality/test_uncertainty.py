"""Uncertainty-first queue: a tiny real reward model scores both responses of every incomplete
pair and the closest-scored pairs are served first; through the API and a real gpu-queue worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedback_site.annotation.models import Pair
from feedback_site.annotation.services import assignment_next
from feedback_site.quality.services import uncertainty_priorities
from tests.workers.conftest import redis_broker, start_worker, wait_for  # noqa: F401  (fixtures)

TEXTS = [
    ("Paris is the capital of France.", "I do not know."),
    ("Two plus two is four.", "Two plus two is four!"),
    ("Water boils at 100 degrees Celsius at sea level.", "Fish."),
    ("The moon orbits the earth.", "The moon orbits the earth, roughly monthly."),
    ("Yes.", "No, that is not right at all, and here is a long reason why it is wrong."),
    ("Use a hash map.", "Use a hash map for constant-time lookups."),
]


@pytest.fixture(scope="session")
def tiny_reward_model(tmp_path_factory) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rlhf.models import make_tiny_model

    root = tmp_path_factory.mktemp("quality-rm")
    base = make_tiny_model(root / "base", seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32)
        torch.nn.init.normal_(model.score.weight, std=1.0)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model.config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = root / "rm"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture
def scored_project(project, make_pairs, tiny_reward_model, site_admin):
    from feedback_site.registry.services import version_register

    project.uncertainty_first = True
    project.save(update_fields=["uncertainty_first"])
    pairs = make_pairs(project, len(TEXTS) + 2, overlap=1, texts=lambda i: TEXTS[i % len(TEXTS)] if i < len(TEXTS) else (f"x{i}", f"y{i}"))
    gold, done = pairs[-2:]
    Pair.objects.filter(pk=gold.pk).update(is_gold=True, gold_label="a", priority=7)
    Pair.objects.filter(pk=done.pk).update(is_complete=True, judgment_count=1, priority=3)
    version = version_register(project=project, kind="reward", name="tiny rm", artifact_uri=str(tiny_reward_model), base_model="tiny")
    return project, pairs[: len(TEXTS)], gold, done, version


def _expected_priorities(pairs, model_dir) -> dict[int, int]:
    from rlhf.scoring import score_pairs

    scores = score_pairs(model_dir, [(p.prompt.messages(), p.response_a.text, p.response_b.text) for p in pairs])
    return uncertainty_priorities({p.pk: s for p, s in zip(pairs, scores)})


def test_priorities_rank_closest_scores_first():
    got = uncertainty_priorities({10: (0.0, 3.0), 11: (1.0, 1.1), 12: (-2.0, -1.0), 13: (5.0, 5.0)})
    assert got == {13: 4, 11: 3, 12: 2, 10: 1}


@pytest.mark.django_db
def test_scoring_sets_priorities_and_the_queue_serves_the_closest_pair_first(scored_project, tiny_reward_model, annotator):
    from workers.quality_tasks import run_score_pairs

    project, pairs, gold, done, version = scored_project
    assert run_score_pairs(project.pk, version.pk) == len(pairs)
    expected = _expected_priorities(pairs, tiny_reward_model)
    stored = dict(Pair.objects.filter(pk__in=[p.pk for p in pairs]).values_list("id", "priority"))
    assert stored == expected and sorted(stored.values()) == list(range(1, len(pairs) + 1))
    # gold and complete pairs keep their priority
    assert Pair.objects.get(pk=gold.pk).priority == 7 and Pair.objects.get(pk=done.pk).priority == 3
    # idempotent: a rerun gives the same priorities
    run_score_pairs(project.pk, version.pk)
    assert dict(Pair.objects.filter(pk__in=[p.pk for p in pairs]).values_list("id", "priority")) == expected
    Pair.objects.filter(pk=gold.pk).update(priority=0)
    leased = assignment_next(project=project, annotator=annotator)
    closest = max(expected, key=expected.get)
    assert leased.assignment.pair_id == closest


@pytest.mark.django_db
def test_score_request_is_refused_when_off_or_with_a_wrong_model(client, project, site_admin, ml_staff, annotator):
    from feedback_site.registry.models import ModelKind, ModelVersion

    client.force_login(ml_staff)
    url = f"/api/v1/projects/{project.pk}/quality/score-pairs/"
    policy = ModelVersion.objects.filter(project=project, kind=ModelKind.POLICY).first()
    off = client.post(url, {"reward_model": policy.pk}, content_type="application/json")
    assert off.status_code == 400 and off.json()["error"] == "uncertainty_off"
    project.uncertainty_first = True
    project.save(update_fields=["uncertainty_first"])
    wrong = client.post(url, {"reward_model": policy.pk}, content_type="application/json")
    assert wrong.status_code == 400 and wrong.json()["error"] == "bad_reward_model"
    assert client.post(url, {}, content_type="application/json").status_code == 400
    client.force_login(annotator)
    assert client.post(url, {"reward_model": policy.pk}, content_type="application/json").status_code == 403


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_score_pairs_goes_through_redis_to_a_gpu_queue_worker(client, scored_project, tiny_reward_model, ml_staff, start_worker):
    project, pairs, gold, done, version = scored_project
    worker = start_worker(queues="gpu", name="scorer")
    client.force_login(ml_staff)
    response = client.post(
        f"/api/v1/projects/{project.pk}/quality/score-pairs/", {"reward_model": version.pk}, content_type="application/json"
    )
    assert response.status_code == 202, response.content
    wait_for(
        lambda: not Pair.objects.filter(pk__in=[p.pk for p in pairs], priority=0).exists(),
        timeout=240,
        worker=worker,
        what="the pairs to be scored",
    )
    assert "quality.score_pairs" in worker.output()
    stored = dict(Pair.objects.filter(pk__in=[p.pk for p in pairs]).values_list("id", "priority"))
    assert stored == _expected_priorities(pairs, tiny_reward_model)
