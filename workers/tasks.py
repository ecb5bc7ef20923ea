"""Celery tasks: named, routed by name (see celery_app), thin. Each loads by id and calls a job
function that does the work through `rlhf` and records outcomes through the site's services."""

from __future__ import annotations

from workers.celery_app import task
from workers.task_names import GENERATION_RUN, OPS_PING, TRAINING_REQUEUE_STALE, TRAINING_RUN


@task(GENERATION_RUN)
def generate_responses(run_id: int) -> None:
    # Imported here so that loading the task module (e.g. by the beat or a light worker) does
    # not import torch.
    from workers.generation_job import run_generation

    run_generation(run_id)


@task(TRAINING_RUN)
def train_model(run_id: int) -> None:
    from workers.training_job import run_training

    run_training(run_id)


@task(OPS_PING)
def ping() -> str:
    return "pong"


@task(TRAINING_REQUEUE_STALE)
def requeue_stale_training() -> list[int]:
    from feedback_site.training.services import training_requeue_stale

    return training_requeue_stale()
