"""Supervised fine-tuning on demonstrations with TRL's SFTTrainer.

Data: JSONL in TRL's conversational format, one demonstration per line:
`{"messages": [{"role": "system"|"user"|"assistant", "content": ...}, ...]}` ending with the
assistant turn to imitate (a demonstration snapshot exports exactly this).

With `completion_only_loss` (the default) each conversation is split into TRL's conversational
prompt-completion form (prompt = every turn before the last assistant message, completion = that
message), so the loss is computed on the written answer only and not on the user's words.
Otherwise the whole conversation is trained on (TRL's "messages" form).

Full or LoRA like the other methods; progress, cancel and resume come from `hf_trainer` and `callbacks`. Metrics:
the training loss and token accuracy as TRL logs them, and on a seeded held-out split the loss
of the parent before training (`eval_loss_before`) and of the result (`eval_loss`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rlhf.config import option, override
from rlhf.models import load_causal_lm, load_tokenizer
from rlhf.progress import RunControl
from rlhf.training.callbacks import make_progress_callback
from rlhf.training.config import BaseTrainConfig
from rlhf.training.data import _conversation, _jsonl_rows, split_holdout
from rlhf.training.devices import choose_device, seed_everything
from rlhf.training.distributed import materialize_parent
from rlhf.training.hf_trainer import (
    held_out_metrics,
    hf_training_arguments,
    last_train_metrics,
    lora_config,
    remove_printer_callback,
    run_hf_trainer,
    train_once,
)
from rlhf.training.run_dir import RunDir, TrainResult, save_model_weights
from rlhf.types import Conversation


@dataclass
class SFTConfig(BaseTrainConfig):
    """SFT training. Shared fields are documented on `BaseTrainConfig`; defaults differ as noted."""

    method: ClassVar[str] = "sft"

    learning_rate: float = override(
        BaseTrainConfig, "learning_rate", 2e-5, help="2e-5 (full fine-tuning; LoRA usually wants 1e-4 to 2e-4)."
    )
    batch_size: int = override(BaseTrainConfig, "batch_size", 8, help="8 demonstrations per micro-step.")
    completion_only_loss: bool = option(
        True, help="Train on the final assistant answer only (see module doc); False trains on every token of the conversation."
    )
    eval_fraction: float = option(
        0.1, min=0.0, max=1.0, max_exclusive=True, help="Fraction of demonstrations held out (seeded) for the held-out loss."
    )


def load_demonstrations(path: Path | str) -> list[Conversation]:
    """Read demonstrations (`{"messages": [...]}` per line), validating every line.

    ValueError names the file and line: a missing key, a malformed message, or a conversation
    that does not end with an assistant answer.
    """
    path = Path(path)
    demos: list[Conversation] = []
    for line_number, row in _jsonl_rows(path):
        where = f"{path}, line {line_number}"
        if "messages" not in row:
            raise ValueError(f"{where}: missing key 'messages' (expected TRL's conversational format)")
        messages = _conversation(row["messages"], f"{where}: 'messages'")
        if messages[-1]["role"] != "assistant":
            raise ValueError(f"{where}: 'messages' must end with the assistant answer to learn")
        if not any(m["role"] == "user" for m in messages[:-1]):
            raise ValueError(f"{where}: 'messages' needs a user turn before the answer")
        demos.append(messages)
    if not demos:
        raise ValueError(f"{path}: no demonstrations (the file is empty)")
    return demos


def _as_records(demos: list[Conversation], completion_only: bool) -> list[dict[str, Any]]:
    if completion_only:
        return [{"prompt": d[:-1], "completion": d[-1:]} for d in demos]
    return [{"messages": d} for d in demos]


def train_sft(
    data_path: Path | str,
    base_model_path: Path | str,
    out_dir: Path | str,
    config: SFTConfig,
    control: RunControl | None = None,
) -> TrainResult:
    """Fine-tune a policy on demonstrations; returns the artifact in `out_dir/final`.

    Idempotent: a finished run returns its artifact, an interrupted one resumes from its latest
    checkpoint. Raises RunCancelled (checkpoint kept) or TrainingDiverged (no artifact).
    """
    return train_once(out_dir, config, data_path, base_model_path, control, lambda run, control: _train(run, config, control))


def _train(run: RunDir, config: SFTConfig, control: RunControl) -> TrainResult:
    from datasets import Dataset
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    seed_everything(config.seed)
    demos = load_demonstrations(run.data_path)
    train_demos, holdout = split_holdout(demos, config.eval_fraction, config.seed)
    control.log(f"{len(train_demos)} training demonstrations, {len(holdout)} held out")

    parent = materialize_parent(run.base_model, run.work_dir)
    tokenizer = load_tokenizer(parent)
    device = choose_device(config)
    args = TRLSFTConfig(
        **hf_training_arguments(config, run, device),
        max_length=config.max_length,
        completion_only_loss=config.completion_only_loss if config.completion_only_loss else None,
        packing=False,
        # TRL appends EOS to conversational text itself through the chat template.
    )
    seed_everything(config.seed)  # LoRA initialises its A matrices randomly
    model = load_causal_lm(parent)
    callback = make_progress_callback(control)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(_as_records(train_demos, config.completion_only_loss)),
        eval_dataset=Dataset.from_list(_as_records(holdout, config.completion_only_loss)) if holdout else None,
        processing_class=tokenizer,
        peft_config=lora_config(config, "causal_lm"),
        callbacks=[callback],
    )
    remove_printer_callback(trainer)

    metrics_before: dict[str, float] = {}
    if holdout:
        # Before train(): the weights are still the parent's even when resuming (the checkpoint is
        # loaded inside train), so this is always the parent's held-out loss.
        before = trainer.evaluate()
        metrics_before["eval_loss_before"] = float(before["eval_loss"])
    final_step = run_hf_trainer(trainer, run, callback, control)

    metrics = last_train_metrics(trainer.state.log_history)
    metrics.update(metrics_before)
    if holdout:
        held = trainer.evaluate()
        metrics.update(held_out_metrics(held))
        control.log(f"held-out loss {metrics_before['eval_loss_before']:.4f} -> {metrics['eval_loss']:.4f}")
    model = trainer.model
    return run.write_final(
        save_weights=lambda target: save_model_weights(model, target, base_model=run.base_model),
        tokenizer=tokenizer,
        final_step=final_step,
        metrics=metrics,
        artifact_type="lora_adapter" if config.use_lora else "full",
        model_kind="policy",
        extra_manifest={"heldout_demonstrations": len(holdout), "train_demonstrations": len(train_demos)},
    )
