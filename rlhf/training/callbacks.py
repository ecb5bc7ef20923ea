"""Trainer callbacks every method uses: progress and cancel, divergence, per-step seeds, resumable epoch order."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Protocol

from rlhf.progress import NullControl, RunControl

if TYPE_CHECKING:  # pragma: no cover - typing only
    pass


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite. Never retried automatically: the same config diverges again."""


def finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def divergence_message(step: int) -> str:
    return f"loss became NaN at step {step}; lower the learning rate"


class StepTimer:
    """Tokens per second and ETA from wall-clock time since this process (re)started training."""

    def __init__(self) -> None:
        self.start_time = time.monotonic()
        self.start_step: int | None = None
        self.last_time = self.start_time
        self.last_tokens: float | None = None

    def begin(self, step: int) -> None:
        self.start_time = self.last_time = time.monotonic()
        self.start_step = step

    def rates(self, step: int, total: int, tokens_seen: float | None) -> dict[str, float]:
        now = time.monotonic()
        out: dict[str, float] = {}
        if tokens_seen is not None:
            if self.last_tokens is not None and now > self.last_time:
                out["tokens_per_s"] = (tokens_seen - self.last_tokens) / (now - self.last_time)
            self.last_tokens = tokens_seen
        self.last_time = now
        done = step - (self.start_step or 0)
        if done > 0 and total >= step:
            out["eta_s"] = (now - self.start_time) / done * (total - step)
        return out


def make_progress_callback(control: RunControl | None) -> ProgressCallbackProtocol:
    """A transformers TrainerCallback forwarding logs to `control`, handling cancel and NaN (see class)."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """Bridges transformers' Trainer to our RunControl.

        * on_log: forwards step/total, loss, learning rate, tokens/s, ETA and every numeric metric
          the TRL trainer logged; a non-finite loss stops training *without* saving, so the last
          checkpoint stays a healthy one.
        * on_step_end: if the caller asked to stop, ask the Trainer to save a checkpoint and stop;
          the caller then raises RunCancelled (the Trainer itself just returns normally).
        """

        def __init__(self, run_control: RunControl) -> None:
            self.run_control = run_control
            self.cancelled_at: int | None = None
            self.diverged_at: int | None = None
            self.timer = StepTimer()

        def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if 0 < state.max_steps <= state.global_step:
                # Resumed from the final checkpoint (killed before the artifact was written).
                # transformers 5.23 would run one step *past* max_steps here; weights and state
                # are already restored at this point, so stop before any step.
                raise _AlreadyTrained
            self.timer.begin(state.global_step)
            if state.global_step > 0:
                self.run_control.log(f"resumed from checkpoint at step {state.global_step}/{state.max_steps}")
            else:
                self.run_control.log(f"training for {state.max_steps} steps")

        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if self.diverged_at is None and self.run_control.should_stop():
                self.cancelled_at = state.global_step
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            logs = logs or {}
            if "loss" not in logs:  # the end-of-training summary (runtime etc.), not a step
                return control
            step = state.global_step
            if not finite(logs["loss"]):
                self.diverged_at = step
                control.should_training_stop = True
                control.should_save = False  # never checkpoint diverged weights
                self.run_control.log(divergence_message(step))
                return control
            metrics = {key: float(value) for key, value in logs.items() if finite(value)}
            metrics.update(self.timer.rates(step, state.max_steps, logs.get("num_tokens")))
            self.run_control.report(step, state.max_steps, metrics)
            return control

    return ProgressCallback(control or NullControl())


def derived_seed(seed: int, step: int, stream: int = 0) -> int:
    """A seed that is a pure function of (run seed, step, stream), for per-step reseeding."""
    return (seed * 1_000_003 + step * 7919 + stream) % (2**31 - 1)


def make_step_seed_callback(seed: int) -> Any:
    """A TrainerCallback that reseeds every RNG at the start of each optimizer step.

    RLOO/GRPO sample answers with the global torch RNG. transformers restores that RNG when it
    resumes, but a fresh epoch iterator draws from it at points that differ between a resumed and
    an uninterrupted run, so the sampled answers (and the final weights) would drift apart.
    Seeding each step from (seed, step) makes the samples of step N the same in both. The callback
    runs after transformers' own RNG restore, so it is what decides.
    """
    from transformers import TrainerCallback, set_seed

    class StepSeedCallback(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            set_seed(derived_seed(seed, state.global_step + 1))
            return control

    return StepSeedCallback()


def epoch_seeded(sampler: Any) -> Any:
    """TRL's RepeatSampler, re-created so each epoch's prompt order is a function of (seed, epoch).

    TRL seeds the sampler's generator once and lets every epoch advance it; a resumed run builds a
    fresh sampler, so from the second epoch on it would visit prompts in a different order than
    the uninterrupted run. transformers calls `set_epoch` on the sampler before each epoch (also
    after a resume), which is where the generator is reseeded here.
    """
    base = type(sampler)

    class EpochSeededRepeatSampler(base):  # type: ignore[misc, valid-type]
        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):  # type: ignore[no-untyped-def]
            if self.shuffle:
                self.generator.manual_seed(derived_seed(self.seed or 0, getattr(self, "epoch", 0), 3))
            return super().__iter__()

    return EpochSeededRepeatSampler(
        data_source=sampler.data_source,
        mini_repeat_count=sampler.mini_repeat_count,
        batch_size=sampler.batch_size,
        repeat_count=sampler.repeat_count,
        shuffle=sampler.shuffle,
        seed=sampler.seed,
    )


class _AlreadyTrained(Exception):
    """Raised by the progress callback when a resumed Trainer has no step left to take."""


class ProgressCallbackProtocol(Protocol):
    cancelled_at: int | None
    diverged_at: int | None
