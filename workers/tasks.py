"""Celery tasks: named, routed by name (see celery_app), thin. Each loads by id and calls a job
function that does the work through `rlhf` and records outcomes through the site's services."""

from __future__ import annotations

from workers.celery_app import app


@app.task(name="generation.generate_responses", bind=True, acks_late=True, reject_on_worker_lost=True)
def generate_responses(self, run_id: int) -> None:
    # Imported here so that loading the task module (e.g. by the beat or a light worker) does
    # not import torch.
    from workers.generation_job import run_generation

    run_generation(run_id)


@app.task(name="training.train_model", bind=True, acks_late=True, reject_on_worker_lost=True)
def train_model(self, run_id: int) -> None:
    from workers.training_job import run_training

    run_training(run_id)


@app.task(name="default.ping")
def ping() -> str:
    return "pong"


@app.task(name="default.requeue_stale_training")
def requeue_stale_training() -> list[int]:
    from feedback_site.training.services import training_requeue_stale

    return training_requeue_stale()
