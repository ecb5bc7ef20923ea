"""Evaluation end to end: launched on the web side, carried by Redis to a real Celery worker on
the gpu queue, results written to PostgreSQL."""

from __future__ import annotations

import pytest

from feedback_site.evaluation.models import EvaluationStatus, SampleSet
from feedback_site.evaluation.services import evaluation_launch
from tests.workers.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_an_evaluation_goes_through_redis_to_a_gpu_queue_worker(eval_project, site_admin, start_worker):
    worker = start_worker(queues="gpu", name="eval")
    run = evaluation_launch(
        project=eval_project["project"],
        policy=eval_project["child"],
        baseline=eval_project["base"],
        reward_model=eval_project["rm1"],
        actor=site_admin,
        config={"max_new_tokens": 6, "temperature": 0.7, "n_resamples": 200, "adversarial": False},
    )
    finished = wait_for(
        lambda: type(run).objects.filter(pk=run.pk, status__in=[EvaluationStatus.SUCCEEDED, EvaluationStatus.FAILED]).first(),
        timeout=300,
        worker=worker,
        what="the evaluation to finish",
    )
    assert finished.status == EvaluationStatus.SUCCEEDED, finished.message
    assert finished.attempts == 1 and finished.results["win_rate"]["n"] == 3
    assert finished.samples.filter(sample_set=SampleSet.EVAL).count() == 3
    assert not finished.samples.filter(sample_set=SampleSet.ADVERSARIAL).exists()
    assert "evaluation.run" in worker.output()
