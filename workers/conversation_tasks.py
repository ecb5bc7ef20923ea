"""Candidate replies of a conversation branch point, on the `playground` queue.

The annotator waits for these, like a playground chat, so they run on the playground worker,
which keeps loaded versions in its model cache (`workers.playground_tasks.model_cache`).

Idempotent (the app acknowledges late and rejects on a lost worker): the branch point's status
row says what is done. `generation_start` marks it `generating` (a redelivery after a worker
died finds it so and starts again); the K replies and the `ready` status are written by
`candidates_store` in one transaction at the end, once, so a turn is never half-stored, never
stored twice, and a duplicate delivery of a finished turn does nothing.
"""

from __future__ import annotations

import logging

from workers.celery_app import task
from workers.task_names import CONVERSATION_GENERATE

log = logging.getLogger(__name__)
# Distinct replies are what an annotator compares: draws that repeat an earlier reply are sampled
# again with the next seed, up to this many draws per wanted reply.
DRAWS_PER_REPLY = 3


@task(CONVERSATION_GENERATE)
def generate(branch_point_id: int) -> None:
    run_branch_point(branch_point_id)


def sample_replies(model, tokenizer, messages: list[dict], k: int, sampling: dict, seed_base: int) -> list[str]:
    """K distinct replies to `messages`: draw i uses seed `seed_base + i`, so a redelivered task
    draws the same replies again."""
    from rlhf.chat import stream_chat

    replies: list[str] = []
    options = {name: value for name, value in sampling.items() if name != "seed"}
    for draw in range(k * DRAWS_PER_REPLY):
        text = stream_chat(model, tokenizer, messages, **options, seed=seed_base + draw).text
        if text not in replies:
            replies.append(text)
        if len(replies) == k:
            return replies
    raise ValueError(f"could not sample {k} distinct replies in {k * DRAWS_PER_REPLY} draws; raise the temperature")


def run_branch_point(branch_point_id: int) -> None:
    from feedback_site.conversations import generation as conversation_generation

    job = conversation_generation.generation_start(branch_point_id=branch_point_id)
    if job is None:
        return
    try:
        from feedback_site.registry.models import ModelVersion
        from feedback_site.registry.services import version_model_dir
        from workers.playground_tasks import model_cache

        version = ModelVersion.objects.get(pk=job["model_version_id"])
        loaded = model_cache().get(version_model_dir(version))
        seed_base = int(job["sampling"].get("seed", 0)) + branch_point_id * 1000
        with loaded.active() as model:
            replies = sample_replies(model, loaded.tokenizer, job["messages"], job["k"], job["sampling"], seed_base)
        conversation_generation.candidates_store(branch_point_id=branch_point_id, texts=replies)
    except Exception as error:
        log.exception("conversation branch point %s failed", branch_point_id)
        conversation_generation.generation_fail(branch_point_id=branch_point_id, error=f"{error.__class__.__name__}: {error}")
