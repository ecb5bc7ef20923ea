"""Runs one generation run: resumable, cancellable, all-or-nothing.

Each finished batch is appended (and fsynced) to `ARTIFACTS/generation/run-<id>/batches.jsonl`.
A redelivered task (the worker died, acks_late) reads that file and generates only the prompts
that are missing; seeds are derived from the prompt ids, so the result is the same as an
uninterrupted run. Responses and pairs are written to the database in one transaction at the end.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from django.conf import settings

from feedback_site.annotation.models import Prompt
from feedback_site.generation import services

log = logging.getLogger(__name__)
CANCEL_POLL_SECONDS = 2.0


def run_dir(run_id: int) -> Path:
    return Path(settings.ARTIFACTS_DIR) / "generation" / f"run-{run_id}"


def _read_done(path: Path) -> dict[int, list[str]]:
    done: dict[int, list[str]] = {}
    if not path.exists():
        return done
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break  # a torn last line from a killed worker; everything before it is whole
            done[int(record["prompt_id"])] = list(record["responses"])
    return done


class _DatabaseControl:
    """RunControl that writes progress to the run row every few seconds and polls for cancel."""

    def __init__(self, run_id: int, already_done: int, total: int):
        self.run_id, self.offset, self.total = run_id, already_done, total
        self._last_report = 0.0
        self._last_cancel_check = 0.0
        self._cancelled = False

    def report(self, step: int, total: int, metrics=None) -> None:
        now = time.monotonic()
        if now - self._last_report >= 1.0 or step >= total:
            self._last_report = now
            tps = (metrics or {}).get("tokens_per_s")
            services.generation_report(run_id=self.run_id, done=self.offset + step, total=self.total, tokens_per_second=tps)

    def log(self, message: str) -> None:
        services.generation_log(run_id=self.run_id, line=message)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self._cancelled and now - self._last_cancel_check >= CANCEL_POLL_SECONDS:
            self._last_cancel_check = now
            self._cancelled = services.generation_cancel_requested(run_id=self.run_id)
        return self._cancelled


def run_generation(run_id: int) -> None:
    run = services.generation_mark_running(run_id=run_id)
    if run is None:
        log.info("generation run %s: nothing to do", run_id)
        return
    from feedback_site.registry.services import version_model_dir
    from rlhf.generation import SamplingConfig, iter_generate
    from rlhf.progress import RunCancelled

    folder = run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    batches_file = folder / "batches.jsonl"
    done = _read_done(batches_file)
    remaining = [pid for pid in run.prompt_ids if pid not in done]
    control = _DatabaseControl(run_id, already_done=len(done), total=len(run.prompt_ids))
    try:
        if done:
            control.log(f"resuming: {len(done)} of {len(run.prompt_ids)} prompts already generated")
        if remaining:
            prompts = {p.pk: p for p in Prompt.objects.filter(pk__in=remaining)}
            remaining = [pid for pid in remaining if pid in prompts]
            model_path = version_model_dir(run.policy)
            control.log(f"loaded policy {run.policy} from {model_path}")
            sampling = SamplingConfig(**run.sampling_dict())
            with batches_file.open("a", encoding="utf-8") as out:
                for batch in iter_generate(
                    model_path,
                    [prompts[pid].messages() for pid in remaining],
                    run.k,
                    sampling,
                    control=control,
                    indices=remaining,
                ):
                    for prompt_id, texts in zip(batch.indices, batch.responses):
                        out.write(json.dumps({"prompt_id": prompt_id, "responses": texts}) + "\n")
                        done[prompt_id] = texts
                    out.flush()
                    os.fsync(out.fileno())
        from workers.safety_tasks import generation_safety_scores

        all_prompts = {p.pk: p for p in Prompt.objects.filter(pk__in=list(done))}
        scores = generation_safety_scores(run.project_id, all_prompts, done)
        services.generation_complete(run_id=run_id, responses_by_prompt=done, safety_scores=scores)
    except RunCancelled:
        services.generation_fail(run_id=run_id, message="Cancelled by a user.", cancelled=True)
    except Exception as error:
        log.exception("generation run %s failed", run_id)
        services.generation_fail(run_id=run_id, message=f"{error.__class__.__name__}: {error}")
        raise
