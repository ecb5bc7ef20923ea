"""Celery tasks of the closed loop (feedback_site.loop): simulated judgments, blind A/B campaign
generation, and the round driver. Thin: each loads by id and calls a service.

Queues come from the specs in workers/task_names.py: the tasks that load models run on the gpu
queue, the others (no torch) on default.
"""

from __future__ import annotations

import logging

from django.conf import settings

from workers.celery_app import app, task
from workers.task_names import (
    LOOP_ADVANCE_ALL_ROUNDS,
    LOOP_ADVANCE_ROUND,
    LOOP_CAMPAIGN_RESPONSES,
    LOOP_SIMULATE_JUDGMENTS,
    LOOP_SIMULATE_WITH_REWARD_MODEL,
)

log = logging.getLogger(__name__)


@task(LOOP_SIMULATE_JUDGMENTS)
def simulate_judgments(run_id: int) -> None:
    """A rule-driven simulated annotator judges up to its run's target (no torch)."""
    from feedback_site.loop.services import simulation_execute

    simulation_execute(run_id=run_id)


@task(LOOP_SIMULATE_WITH_REWARD_MODEL)
def simulate_judgments_with_reward_model(run_id: int) -> None:
    """A reward-model-driven simulated annotator: the reward model is loaded once per task."""
    from workers.loop_jobs import run_reward_model_simulation

    run_reward_model_simulation(run_id)


@task(LOOP_CAMPAIGN_RESPONSES)
def campaign_responses(campaign_id: int) -> None:
    from workers.loop_jobs import run_campaign_generation

    run_campaign_generation(campaign_id)


@task(LOOP_ADVANCE_ROUND)
def advance_round(round_id: int) -> str:
    """Advance one round and, while it is active, look at it again after a pause."""
    from feedback_site.loop.models import Stage
    from feedback_site.loop.services import round_advance

    try:
        rnd = round_advance(round_id=round_id)
    except Exception:
        # A transient error (database restart, broker hiccup) must not end the driver chain:
        # log it and look again later. Stage failures are recorded on the round by the service.
        log.exception("advancing round %s failed; retrying in %ss", round_id, settings.LOOP_SLOW_TICK_SECONDS)
        app.send_task(LOOP_ADVANCE_ROUND.name, args=[round_id], countdown=settings.LOOP_SLOW_TICK_SECONDS)
        return "error"
    if rnd is None or rnd.is_terminal:
        return rnd.stage if rnd is not None else "missing"
    waiting_for_people = (rnd.stage == Stage.ANNOTATE and rnd.simulated_annotator_id is None) or rnd.stage == Stage.PROMOTE
    tick = settings.LOOP_SLOW_TICK_SECONDS if waiting_for_people else settings.LOOP_TICK_SECONDS
    app.send_task(LOOP_ADVANCE_ROUND.name, args=[round_id], countdown=tick)
    return rnd.stage


@task(LOOP_ADVANCE_ALL_ROUNDS)
def advance_all_rounds() -> list[int]:
    """For `celery beat`: advance every active round once (a safety net for lost driver chains)."""
    from feedback_site.loop.services import active_round_ids, round_advance

    ids = active_round_ids()
    for round_id in ids:
        round_advance(round_id=round_id)
    return ids
