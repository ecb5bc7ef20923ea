"""Running a transformers/TRL Trainer the same way for every method: arguments, LoRA, resume, metrics."""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rlhf.progress import NullControl, RunCancelled, RunControl
from rlhf.training.callbacks import ProgressCallbackProtocol, TrainingDiverged, _AlreadyTrained, divergence_message, finite
from rlhf.training.config import BaseTrainConfig
from rlhf.training.devices import DeviceChoice
from rlhf.training.run_dir import CHECKPOINT_COMPLETE_MARKER, RunDir, TrainResult, full_state_dict, save_model_weights

if TYPE_CHECKING:  # pragma: no cover - typing only
    from peft import LoraConfig
    from transformers import Trainer


def lora_config(config: BaseTrainConfig, task: Literal["causal_lm", "seq_cls"]) -> LoraConfig | None:
    """The PEFT LoRA config for a run, or None for full fine-tuning.

    For a reward model the freshly initialised scalar head (`score`) must train in full, or the
    model could only rank through a random projection.
    """
    if not config.use_lora:
        return None
    from peft import LoraConfig, TaskType

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        task_type=TaskType.SEQ_CLS if task == "seq_cls" else TaskType.CAUSAL_LM,
        modules_to_save=["score"] if task == "seq_cls" else None,
        bias="none",
    )


def hf_training_arguments(config: BaseTrainConfig, run: RunDir, device: DeviceChoice) -> dict[str, Any]:
    """TrainingArguments shared by the TRL-based methods (passed into each method's TRL config class).

    Several TRL defaults are deliberately overridden: bf16 defaults to True in TRL even on CPU,
    gradient checkpointing defaults to on, and transformers replaces a NaN loss in its logs by the
    running average (`logging_nan_inf_filter`), which would hide divergence from our detector.
    """
    return {
        "output_dir": str(run.checkpoints_dir),
        "seed": config.seed,
        "data_seed": config.seed,
        "learning_rate": config.learning_rate,
        "num_train_epochs": config.num_train_epochs,
        "max_steps": config.max_steps if config.max_steps is not None else -1,
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "lr_scheduler_type": config.lr_scheduler_type,
        "warmup_steps": config.warmup_ratio,
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        # transformers 5.23 renamed gradient checkpointing to activation checkpointing; TRL still
        # defaults the old name to True, so set the new one explicitly (it wins) and clear the old.
        "activation_checkpointing": config.gradient_checkpointing,
        "gradient_checkpointing": None,
        "bf16": device.bf16,
        "fp16": False,
        "use_cpu": device.use_cpu,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "logging_strategy": "steps",
        "logging_steps": 1,
        "logging_nan_inf_filter": False,
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "eval_strategy": "no",
    }


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and info chatter inside a training call (restored afterwards).

    A worker's log should hold our progress lines, not a tqdm bar per saved shard; warnings and
    errors still come through.
    """
    import datasets
    from transformers.utils import logging as hf_logging

    bars_were_enabled = hf_logging.is_progress_bar_enabled()
    dataset_bars_were_enabled = datasets.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            # TRL 1.16 still calls transformers' gradient-checkpointing names that 5.23 renamed;
            # nothing a user can act on.
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*deprecated and will be removed in v6")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_were_enabled:
            hf_logging.enable_progress_bar()
        if dataset_bars_were_enabled:
            datasets.enable_progress_bars()


def remove_printer_callback(trainer: Trainer) -> None:
    """Drop the callback that prints every log dict to stdout (added when tqdm is disabled); we report instead."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)


def run_hf_trainer(trainer: Trainer, run: RunDir, callback: ProgressCallbackProtocol, control: RunControl) -> int:
    """Train with resume from the latest complete checkpoint; translate cancel / NaN into exceptions.

    Returns the final global step. The Trainer restores model, optimizer, scheduler, RNG states
    and the position in the data from the checkpoint, so an interrupted run continues exactly
    where it stopped and ends at the same step with the same weights as an uninterrupted one.
    """
    checkpoint = run.latest_checkpoint()
    if checkpoint is not None:
        control.log(f"resuming from {checkpoint.name}")
        _restore_token_count(trainer, checkpoint)
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    except _AlreadyTrained:
        control.log(f"{checkpoint.name if checkpoint else 'checkpoint'} is the final step; writing the artifact")
    if callback.diverged_at is not None:
        raise TrainingDiverged(divergence_message(callback.diverged_at))
    if callback.cancelled_at is not None:
        latest = run.latest_checkpoint()
        raise RunCancelled(f"cancelled at step {callback.cancelled_at}; checkpoint kept at {latest if latest else 'none'}")
    return trainer.state.global_step


def _restore_token_count(trainer: Trainer, checkpoint: Path) -> None:
    """Continue TRL's cumulative `num_tokens` metric from the checkpoint.

    TRL keeps the count in a trainer attribute that a resumed Trainer starts again at 0, so a
    resumed run would report fewer tokens (and a wrong tokens/s) than an uninterrupted one.
    """
    if not hasattr(trainer, "_total_train_tokens"):
        return
    state = json.loads((checkpoint / CHECKPOINT_COMPLETE_MARKER).read_text())
    for entry in reversed(state.get("log_history", [])):
        if "num_tokens" in entry:
            trainer._total_train_tokens = int(entry["num_tokens"])
            return


def last_train_metrics(log_history: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The metrics of the last logged training step (deterministic: no wall-clock values).

    Taken from the Trainer's `log_history`, which checkpoints carry, so a run resumed right at
    its last step still reports the same final metrics as one that was never interrupted.
    """
    for entry in reversed(log_history):
        if "loss" in entry:
            return {
                key: float(value)
                for key, value in entry.items()
                if finite(value) and key not in {"epoch", "step"} and not _is_wall_clock(key)
            }
    return {}


def write_trained_model(
    run: RunDir,
    trainer: Trainer,
    tokenizer: Any,
    config: BaseTrainConfig,
    *,
    final_step: int,
    metrics: dict[str, float],
    model_kind: Literal["policy", "reward"],
    extra_manifest: Mapping[str, Any],
) -> TrainResult:
    """The finished run's artifact: all weights, or the LoRA adapter alone, with the tokenizer and
    the manifest. Under FSDP the weights are gathered first, a collective call every rank makes
    before rank 0 writes."""
    model = trainer.model
    state_dict = full_state_dict(trainer)
    return run.write_final(
        save_weights=lambda target: save_model_weights(model, target, base_model=run.base_model, state_dict=state_dict),
        tokenizer=tokenizer,
        final_step=final_step,
        metrics=metrics,
        artifact_type="lora_adapter" if config.use_lora else "full",
        model_kind=model_kind,
        extra_manifest=dict(extra_manifest),
    )


def held_out_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a `trainer.evaluate()` result, without its wall-clock figures (which would
    make two identical runs report different final metrics)."""
    return {
        key: float(value)
        for key, value in values.items()
        if isinstance(value, (int, float)) and not key.endswith(("_runtime", "_per_second", "_preparation_time"))
    }


def reference_dtype(device: DeviceChoice) -> Any:
    """The dtype of a frozen reference model: bf16 under bf16 mixed precision (it is never
    updated, so it needs no float32 master copy, and autocast has nothing to cast), else the default."""
    if not device.bf16:
        return None
    import torch

    return torch.bfloat16


def _is_wall_clock(key: str) -> bool:
    # e.g. TRL's step_time, transformers' train_runtime / *_per_second: they differ between two
    # otherwise identical runs, so they are progress information, not final metrics.
    return "time" in key or "runtime" in key or key.endswith("_per_second")


def train_once(
    out_dir: Path | str,
    config: BaseTrainConfig,
    data_path: Path | str,
    base_model_path: Path | str,
    control: RunControl | None,
    train: Callable[[RunDir, RunControl], TrainResult],
    *,
    extra_identity: Mapping[str, Any] | None = None,
) -> TrainResult:
    """The entry every method shares: a finished run returns its artifact (idempotent), any other
    call trains in `out_dir` (resuming from its latest checkpoint) with transformers kept quiet."""
    control = control or NullControl()
    run = RunDir.prepare(out_dir, config.method, config, data_path, base_model_path, extra_identity=extra_identity)
    if (done := run.finished()) is not None:
        control.log("run already finished; returning its artifact")
        return done
    with quiet_transformers():
        return train(run, control)
