"""Celery tasks of the closed loop (feedback_site.loop): simulated judgments, blind A/B campaign
generation, and the round driver. Thin: each loads by id and calls a service.

Routing is by name (workers/celery_app.py): `loop.*` runs on the default queue (no torch);
`generation.loop_*` loads models and runs on the gpu queue.
"""

from __future__ import annotations

import logging
import os

from workers.celery_app import app

log = logging.getLogger(__name__)

# Seconds between two looks at an active round (tests set it lower through the environment).
TICK_SECONDS = float(os.environ.get("LOOP_TICK_SECONDS", "10"))
# A round waiting for people (human annotation, a promotion decision) is looked at less often.
SLOW_TICK_SECONDS = float(os.environ.get("LOOP_SLOW_TICK_SECONDS", "60"))


@app.task(name="loop.simulate_judgments", acks_late=True, reject_on_worker_lost=True)
def simulate_judgments(run_id: int) -> None:
    """A rule-driven simulated annotator judges up to its run's target (no torch)."""
    from feedback_site.loop.services import simulation_execute

    simulation_execute(run_id=run_id)


@app.task(name="generation.loop_simulate_judgments", acks_late=True, reject_on_worker_lost=True)
def simulate_judgments_with_reward_model(run_id: int) -> None:
    """A reward-model-driven simulated annotator: the reward model is loaded once per task."""
    from workers.loop_jobs import run_reward_model_simulation

    run_reward_model_simulation(run_id)


@app.task(name="generation.loop_campaign_responses", acks_late=True, reject_on_worker_lost=True)
def campaign_responses(campaign_id: int) -> None:
    from workers.loop_jobs import run_campaign_generation

    run_campaign_generation(campaign_id)


@app.task(name="loop.advance_round", acks_late=True)
def advance_round(round_id: int) -> str:
    """Advance one round and, while it is active, look at it again after a pause."""
    from feedback_site.loop.models import Stage
    from feedback_site.loop.services import round_advance

    try:
        rnd = round_advance(round_id=round_id)
    except Exception:
        # A transient error (database restart, broker hiccup) must not end the driver chain:
        # log it and look again later. Stage failures are recorded on the round by the service.
        log.exception("advancing round %s failed; retrying in %ss", round_id, SLOW_TICK_SECONDS)
        app.send_task("loop.advance_round", args=[round_id], countdown=SLOW_TICK_SECONDS)
        return "error"
    if rnd is None or rnd.is_terminal:
        return rnd.stage if rnd is not None else "missing"
    waiting_for_people = (rnd.stage == Stage.ANNOTATE and rnd.simulated_annotator_id is None) or rnd.stage == Stage.PROMOTE
    app.send_task("loop.advance_round", args=[round_id], countdown=SLOW_TICK_SECONDS if waiting_for_people else TICK_SECONDS)
    return rnd.stage


@app.task(name="loop.advance_all_rounds")
def advance_all_rounds() -> list[int]:
    """For `celery beat`: advance every active round once (a safety net for lost driver chains)."""
    from feedback_site.loop.services import active_round_ids, round_advance

    ids = active_round_ids()
    for round_id in ids:
        round_advance(round_id=round_id)
    return ids
