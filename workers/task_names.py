"""Every Celery task's name, queue, limits and retries, declared once.

The web process refers to tasks through these specs (`feedback_site.core.queue.enqueue(SPEC, ...)`)
without importing the task modules (and with them torch); `workers.celery_app` registers each task
under its spec with the `task` decorator and derives the routes from the specs. Nothing here imports
Celery or Django.

Names say the domain the work belongs to (`evaluation.run`), not the queue it happens to run on:
the queue is a separate field, so moving a task to another queue never renames it. Older names
(from before specs) stay registered as aliases, so tasks already waiting in a broker still run after
an upgrade.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_QUEUE = "default"
# GPU-shaped work: anything that loads a model for generation, scoring or training.
GPU_QUEUE = "gpu"
# Interactive chat: its own worker keeps versions loaded between messages.
PLAYGROUND_QUEUE = "playground"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    queue: str = DEFAULT_QUEUE
    # Seconds; None means the app-wide limits (CELERY_TASK_SOFT_TIME_LIMIT / CELERY_TASK_TIME_LIMIT).
    soft_time_limit: int | None = None
    time_limit: int | None = None
    # Retries of transient errors only (a database or broker connection that dropped). Never used
    # for out-of-memory, a diverged run or bad input: those fail the run with a message instead.
    retries: int = 0
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if "." not in self.name:
            raise ValueError(f"task name {self.name!r} must be <domain>.<action>")
        if self.time_limit is not None and self.soft_time_limit is not None and self.time_limit <= self.soft_time_limit:
            raise ValueError(f"{self.name}: time_limit must exceed soft_time_limit")


GENERATION_RUN = TaskSpec("generation.run", GPU_QUEUE, aliases=("generation.generate_responses",))
TRAINING_RUN = TaskSpec("training.run", GPU_QUEUE, aliases=("training.train_model",))
TRAINING_REQUEUE_STALE = TaskSpec(
    "training.requeue_stale", soft_time_limit=60, time_limit=90, retries=3, aliases=("default.requeue_stale_training",)
)
EVALUATION_RUN = TaskSpec("evaluation.run", GPU_QUEUE, aliases=("generation.evaluate",))
QUALITY_SCORE_PAIRS = TaskSpec("quality.score_pairs", GPU_QUEUE, aliases=("generation.score_pairs",))
SNAPSHOT_BUILD = TaskSpec("snapshots.build", retries=3)
LOOP_SIMULATE_JUDGMENTS = TaskSpec("loop.simulate_judgments")
LOOP_SIMULATE_WITH_REWARD_MODEL = TaskSpec(
    "loop.simulate_judgments_with_reward_model", GPU_QUEUE, aliases=("generation.loop_simulate_judgments",)
)
LOOP_CAMPAIGN_RESPONSES = TaskSpec("loop.campaign_responses", GPU_QUEUE, aliases=("generation.loop_campaign_responses",))
LOOP_ADVANCE_ROUND = TaskSpec("loop.advance_round", soft_time_limit=300, time_limit=360)
LOOP_ADVANCE_ALL_ROUNDS = TaskSpec("loop.advance_all_rounds", soft_time_limit=600, time_limit=660)
PLAYGROUND_GENERATE = TaskSpec("playground.generate", PLAYGROUND_QUEUE, soft_time_limit=600, time_limit=660)
# The K candidate replies of one conversation branch point: interactive like the playground (an
# annotator waits for them), so it runs on the playground worker, which keeps versions loaded.
CONVERSATION_GENERATE = TaskSpec("conversations.generate", PLAYGROUND_QUEUE, soft_time_limit=600, time_limit=660)
OPS_PING = TaskSpec("ops.ping", soft_time_limit=10, time_limit=20, aliases=("default.ping",))

SPECS: tuple[TaskSpec, ...] = (
    GENERATION_RUN,
    TRAINING_RUN,
    TRAINING_REQUEUE_STALE,
    EVALUATION_RUN,
    QUALITY_SCORE_PAIRS,
    SNAPSHOT_BUILD,
    LOOP_SIMULATE_JUDGMENTS,
    LOOP_SIMULATE_WITH_REWARD_MODEL,
    LOOP_CAMPAIGN_RESPONSES,
    LOOP_ADVANCE_ROUND,
    LOOP_ADVANCE_ALL_ROUNDS,
    PLAYGROUND_GENERATE,
    CONVERSATION_GENERATE,
    OPS_PING,
)

# Celery's task_routes: every name and alias to its spec's queue (nothing is routed by pattern).
ROUTES: dict[str, dict[str, str]] = {name: {"queue": spec.queue} for spec in SPECS for name in (spec.name, *spec.aliases)}

# Tasks whose first argument is the id of a run, and the kind of run (for the logs' run_id field).
RUN_KINDS: dict[str, str] = {
    name: kind
    for spec, kind in ((GENERATION_RUN, "generation"), (TRAINING_RUN, "training"), (EVALUATION_RUN, "evaluation"))
    for name in (spec.name, *spec.aliases)
}


def spec_named(name: str) -> TaskSpec:
    for spec in SPECS:
        if name == spec.name or name in spec.aliases:
            return spec
    raise KeyError(f"no task named {name!r}")
