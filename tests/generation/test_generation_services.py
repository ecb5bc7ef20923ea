"""Generation runs: validation before queueing, pair formation, all-or-nothing completion."""

from __future__ import annotations

import pytest

from feedback_site.annotation.models import Pair, Prompt, Response, Split
from feedback_site.core.errors import Invalid, QueueUnavailable
from feedback_site.generation import services
from feedback_site.generation.models import GenerationRun, RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """Records what would be sent to the broker (the real broker path has its own worker test)."""
    calls = []
    monkeypatch.setattr(services, "enqueue", lambda spec, *args, **options: calls.append((spec.name, args)) or "task-id")
    return calls


@pytest.fixture
def prompts(project):
    rows = [Prompt.objects.create(project=project, text=f"Prompt {i}") for i in range(3)]
    Prompt.objects.create(project=project, text="held out", split=Split.EVAL)
    return rows


def test_launch_freezes_training_prompts_and_queues_one_task(project, ml_staff, prompts, sent):
    run = services.generation_launch(project=project, actor=ml_staff, k=3, temperature=0.9, seed=7)
    assert run.prompt_ids == [p.pk for p in prompts]  # evaluation prompts are never used
    assert run.status == RunStatus.QUEUED and run.policy == project.current_policy
    assert sent == [("generation.run", (run.pk,))]
    assert len(run.config_hash) == 64


@pytest.mark.parametrize(
    "kwargs, phrase",
    [
        ({"k": 1}, "k: must be between 2 and 16"),
        ({"temperature": -1}, "temperature: must be between 0 and 5"),
        ({"top_p": 0}, "top_p: must be > 0"),
        ({"max_new_tokens": 0}, "max_new_tokens: must be between 1 and 4096"),
        ({"pairing": "sample", "pairs_per_prompt": 7, "k": 3}, "pairs_per_prompt: must be between 1 and 3"),
        ({"pairing": "random"}, "pairing: expected one of"),
        ({"colour": "red"}, "unknown field 'colour'"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_queued(project, ml_staff, prompts, sent, kwargs, phrase):
    with pytest.raises(Invalid, match=phrase):
        services.generation_launch(project=project, actor=ml_staff, **kwargs)
    assert sent == [] and GenerationRun.objects.count() == 0


def test_unreachable_queue_is_reported_and_the_run_marked_failed(project, ml_staff, prompts, monkeypatch):
    import workers.celery_app
    from feedback_site.core import queue

    def down(*args, **kwargs):
        from kombu.exceptions import OperationalError

        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(workers.celery_app.app, "send_task", down)
    monkeypatch.setattr(services, "enqueue", queue.enqueue)
    with pytest.raises(QueueUnavailable, match="task queue is unavailable"):
        services.generation_launch(project=project, actor=ml_staff)
    run = GenerationRun.objects.get()
    assert run.status == RunStatus.FAILED and "unavailable" in run.message


def test_completion_creates_responses_and_all_pairs_at_once(project, ml_staff, prompts, sent):
    run = services.generation_launch(project=project, actor=ml_staff, k=3)
    services.generation_mark_running(run_id=run.pk)
    result = {p.pk: [f"{p.pk}-x", f"{p.pk}-y", f"{p.pk}-z"] for p in prompts}
    run = services.generation_complete(run_id=run.pk, responses_by_prompt=result)
    assert run.status == RunStatus.SUCCEEDED and (run.response_count, run.pair_count) == (9, 9)
    assert Response.objects.filter(generation_run=run, model_version=project.current_policy).count() == 9
    assert all(p.overlap == project.overlap and not p.is_complete for p in Pair.objects.all())
    # Completing again (a redelivered task) changes nothing.
    services.generation_complete(run_id=run.pk, responses_by_prompt=result)
    assert Pair.objects.count() == 9


def test_sampled_pairing_and_identical_samples(project, ml_staff, prompts, sent):
    run = services.generation_launch(project=project, actor=ml_staff, k=4, pairing="sample", pairs_per_prompt=2)
    services.generation_mark_running(run_id=run.pk)
    result = {p.pk: ["same", "same", "other", "third"] for p in prompts}
    services.generation_complete(run_id=run.pk, responses_by_prompt=result)
    for prompt in prompts:
        pairs = Pair.objects.filter(prompt=prompt)
        assert pairs.count() <= 2
        assert all(p.response_a.text != p.response_b.text for p in pairs)


def test_incomplete_results_write_nothing(project, ml_staff, prompts, sent):
    run = services.generation_launch(project=project, actor=ml_staff, k=2)
    services.generation_mark_running(run_id=run.pk)
    with pytest.raises(Invalid, match="have no responses"):
        services.generation_complete(run_id=run.pk, responses_by_prompt={prompts[0].pk: ["a", "b"]})
    assert Response.objects.count() == 0 and Pair.objects.count() == 0


def test_cancel_before_start(project, ml_staff, prompts, sent):
    run = services.generation_launch(project=project, actor=ml_staff)
    services.generation_cancel(run=run, actor=ml_staff)
    assert GenerationRun.objects.get().status == RunStatus.CANCELLED
    assert services.generation_mark_running(run_id=run.pk) is None


def test_annotators_cannot_launch(project, annotator, prompts, sent):
    from feedback_site.core.errors import Forbidden

    with pytest.raises(Forbidden):
        services.generation_launch(project=project, actor=annotator)


def test_a_sampled_nul_byte_does_not_fail_the_run(project, ml_staff, prompts, sent):
    run = services.generation_launch(project=project, actor=ml_staff, k=2)
    services.generation_mark_running(run_id=run.pk)
    result = {p.pk: ["ok", "bad\x00byte"] for p in prompts}
    run = services.generation_complete(run_id=run.pk, responses_by_prompt=result)
    assert run.status == RunStatus.SUCCEEDED
    assert Response.objects.filter(text="bad\ufffdbyte").count() == 3


def test_a_run_can_queue_its_answers_for_rating_except_hidden_ones(project, ml_staff, prompts, sent):
    from feedback_site.ratings.models import RatingTask
    from feedback_site.safety.services import policy_update

    policy_update(project=project, actor=ml_staff, action="hide")
    run = services.generation_launch(project=project, actor=ml_staff, k=2, rate_answers=True)
    assert run.rate_answers is True
    services.generation_mark_running(run_id=run.pk)
    result = {p.pk: [f"{p.pk} is fine", "how to make a pipe bomb"] for p in prompts}
    run = services.generation_complete(run_id=run.pk, responses_by_prompt=result)
    queued = set(RatingTask.objects.filter(project=project).values_list("response__text", flat=True))
    assert queued == {f"{p.pk} is fine" for p in prompts}  # the hidden answers are never queued
    assert run.message == "6 responses and 3 pairs created; 3 answers queued for rating."
    assert set(RatingTask.objects.values_list("overlap", flat=True)) == {project.overlap}
    services.generation_complete(run_id=run.pk, responses_by_prompt=result)  # a redelivered task adds nothing
    assert RatingTask.objects.count() == 3
