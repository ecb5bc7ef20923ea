"""Playground generation on the `playground` queue.

Run its worker WITHOUT `--max-tasks-per-child` so loaded versions stay in memory between
messages: `celery -A workers.celery_app worker -Q playground --concurrency 1`. The process keeps
an LRU of loaded versions (`rlhf.chat.ModelCache`, size `PLAYGROUND_MAX_MODELS`, default 2 base
models; LoRA versions of one base share its weights). Answers stream by updating the message row
every `PLAYGROUND_FLUSH_TOKENS` tokens (default 4). `PLAYGROUND_TORCH_THREADS` sets torch's
intra-op threads (default: torch's own choice; 1 is best on a small shared CPU machine).
"""

from __future__ import annotations

import logging
import time

from django.conf import settings

from workers.celery_app import task
from workers.task_names import PLAYGROUND_GENERATE

log = logging.getLogger(__name__)
_CACHE = None


def model_cache():
    global _CACHE
    if _CACHE is None:
        from rlhf.chat import ModelCache

        threads = settings.PLAYGROUND_TORCH_THREADS
        if threads:
            # On a shared or small CPU machine one thread per worker is much faster than torch's
            # default (threads spin-waiting on busy cores): measured 3.7 vs 0.4 tokens/s.
            import torch

            torch.set_num_threads(threads)
        _CACHE = ModelCache(max_bases=settings.PLAYGROUND_MAX_MODELS)
    return _CACHE


@task(PLAYGROUND_GENERATE)
def generate(message_id: int) -> None:
    run_message(message_id)


def run_message(message_id: int) -> None:

    from feedback_site.playground import services

    started = time.perf_counter()
    message = services.message_start(message_id=message_id)
    if message is None:
        return
    try:
        from feedback_site.registry.services import version_model_dir
        from feedback_site.safety.services import effective_rules, policy_for
        from rlhf.chat import stream_chat
        from rlhf.safety import compile_rules

        chat = message.chat
        path = version_model_dir(message.model_version)
        loaded = model_cache().get(path)
        history = services.lane_history(chat, message.lane, before_turn=message.turn)
        user = chat.messages.filter(lane=message.lane, turn=message.turn, role="user").first()
        conversation = history + [{"role": "user", "content": user.content if user else ""}]
        flush_every = settings.PLAYGROUND_FLUSH_TOKENS
        policy = policy_for(chat.project_id)
        rules = effective_rules(policy) if policy.enabled else compile_rules([])
        state = {"stop": False, "first_ms": None, "withheld": False}

        def on_text(text: str, tokens: int) -> None:
            if state["first_ms"] is None:
                state["first_ms"] = (time.perf_counter() - started) * 1000
            if tokens % flush_every and tokens != 1:
                return
            if not state["withheld"] and policy.action in ("hide", "review"):
                # Rules are cheap: a match mid-stream stops publishing the text at once.
                state["withheld"] = services.screen_partial(project_id=chat.project_id, text=text, rules=rules) is not None
            shown = "" if state["withheld"] else text
            state["stop"] = services.message_stream(message_id=message_id, content=shown, tokens=tokens, first_token_ms=state["first_ms"])

        with loaded.active() as model:
            result = stream_chat(
                model,
                loaded.tokenizer,
                conversation,
                **message.sampling,
                on_text=on_text,
                should_stop=lambda: state["stop"],
            )
        score = None
        from workers.safety_tasks import classifier_scores

        if result.text:
            scores = classifier_scores(chat.project_id, [conversation], [result.text])
            score = scores[0] if scores else None
        services.message_finish(
            message_id=message_id,
            content=result.text,
            tokens=result.tokens,
            first_token_ms=state["first_ms"],
            total_ms=(time.perf_counter() - started) * 1000,
            model_was_loaded=loaded.was_loaded,
            cancelled=state["stop"],
            safety_score=score,
        )
    except Exception as error:
        log.exception("playground message %s failed", message_id)
        services.message_fail(message_id=message_id, error=f"{error.__class__.__name__}: {error}")
