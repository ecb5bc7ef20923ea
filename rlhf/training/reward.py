"""Bradley–Terry reward model with TRL's RewardTrainer, and `score()` to use one as a reward function.

The model is the policy's architecture with a scalar head (`AutoModelForSequenceClassification`,
`num_labels=1`), trained on preference pairs with the Bradley–Terry loss
`-log σ(r(x, y_chosen) - r(x, y_rejected))`. The reward of a conversation is the head's output at
its last token.

Metrics, live and final:
* accuracy: fraction of pairs with r(chosen) > r(rejected), *strict*: a tie counts as wrong;
* margin: mean r(chosen) - r(rejected);
* tie_fraction: fraction of pairs with |r(chosen) - r(rejected)| <= `tie_tolerance`.
The final metrics add the same three on a seeded held-out split (`eval_accuracy`, ...), which is
what a reward-model version should be judged by.

Conversations longer than `max_length` keep their last `max_length` tokens, in training and in
scoring alike (TRL would drop such pairs from training).

Heavy libraries (torch, transformers, trl, peft) are imported inside functions: the web process
imports this module for `RewardConfig` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rlhf.config import option, override
from rlhf.models import load_tokenizer
from rlhf.progress import RunControl
from rlhf.scoring import RewardModelScorer, encode_conversation, evaluate_pairs
from rlhf.training import shared_prefix
from rlhf.training.callbacks import make_progress_callback
from rlhf.training.config import BaseTrainConfig, check
from rlhf.training.data import load_preference_records, split_holdout
from rlhf.training.devices import choose_device, seed_everything
from rlhf.training.distributed import materialize_parent
from rlhf.training.hf_trainer import (
    hf_training_arguments,
    last_train_metrics,
    lora_config,
    remove_printer_callback,
    run_hf_trainer,
    train_once,
    write_trained_model,
)
from rlhf.training.run_dir import RunDir, TrainResult
from rlhf.types import Conversation

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class RewardConfig(BaseTrainConfig):
    """Reward-model training. Shared fields are documented on `BaseTrainConfig`; defaults differ as noted."""

    method: ClassVar[str] = "reward"

    learning_rate: float = override(BaseTrainConfig, "learning_rate", 2e-5, help="2e-5 (full fine-tune; about 1e-4 suits LoRA).")
    batch_size: int = override(BaseTrainConfig, "batch_size", 8, help="8 pairs per micro-step (each pair is two sequences).")
    eval_fraction: float = option(
        0.1,
        min=0.0,
        max=1.0,
        max_exclusive=True,
        help="Fraction of pairs held out (seeded) for the final accuracy / margin / tie fraction; 0 disables the held-out evaluation.",
    )
    tie_tolerance: float = option(
        0.0, min=0.0, help="Pairs whose rewards differ by at most this count as ties (and as wrong in the strict accuracy)."
    )
    center_rewards_coefficient: float | None = option(
        None,
        min=0.0,
        help="If set, adds coef * mean(r²) to the loss so rewards stay centred on 0 (Eisenstein et al. 2023); 0.01 is the usual value. Helps PPO, which whitens nothing by default.",
    )
    score_batch_size: int = option(16, min=1, help="Batch size of the held-out scoring pass.")
    train_top_layers: int | None = option(
        None,
        min=1,
        help="Full fine-tuning of the top N transformer layers only (plus the final norm and the score head); the embeddings and lower layers stay frozen, so the backward pass stops at the first trained layer and a step costs little more than a forward pass. A cheap middle ground between LoRA and full fine-tuning on CPU; None trains every layer. Not combinable with `use_lora`.",
    )
    shared_prefix: bool = option(
        True,
        help="Run the tokens a pair's two conversations share (the prompt) once, on a key/value cache, instead of once per conversation (`rlhf/training/shared_prefix.py`). Same scores and gradients up to float rounding, less compute the longer the prompts. Not used with gradient checkpointing or FSDP.",
    )

    def check(self) -> None:
        super().check()
        check(
            self.train_top_layers is None or not self.use_lora,
            "train_top_layers",
            "cannot be combined with use_lora (LoRA already trains only its adapters)",
        )


def train_reward(
    data_path: Path | str,
    base_model_path: Path | str,
    out_dir: Path | str,
    config: RewardConfig,
    control: RunControl | None = None,
) -> TrainResult:
    """Train a reward model on a preference snapshot; returns the artifact in `out_dir/final`.

    Idempotent: a finished run returns its artifact, an interrupted one resumes from its latest
    checkpoint. Raises RunCancelled (checkpoint kept) or TrainingDiverged (no artifact).
    """
    return train_once(out_dir, config, data_path, base_model_path, control, lambda run, control: _train(run, config, control))


def _train(run: RunDir, config: RewardConfig, control: RunControl) -> TrainResult:
    from trl import RewardConfig as TRLRewardConfig

    seed_everything(config.seed)
    records = load_preference_records(run.data_path)
    train_records, holdout = split_holdout(records, config.eval_fraction, config.seed)
    control.log(f"{len(train_records)} training pairs, {len(holdout)} held out")

    parent = materialize_parent(run.base_model, run.work_dir)
    tokenizer = load_tokenizer(parent)
    device = choose_device(config, parent)
    args = TRLRewardConfig(
        **hf_training_arguments(config, run, device),
        max_length=config.max_length,
        center_rewards_coefficient=config.center_rewards_coefficient,
        model_init_kwargs={"dtype": "float32"},
        disable_dropout=True,
    )
    callback = make_progress_callback(control)
    trainer = _reward_trainer_class()(
        model=str(parent),
        args=args,
        train_dataset=_tokenized_pairs(tokenizer, train_records, config.max_length, control),
        processing_class=tokenizer,
        peft_config=lora_config(config, "seq_cls"),
        callbacks=[callback],
        tie_tolerance=config.tie_tolerance,
    )
    remove_printer_callback(trainer)
    if shared_prefix.usable(config):
        shared_prefix.install_shared_prefix_scoring(shared_prefix.module_to_wrap(trainer, trainer.model))
    if config.train_top_layers is not None:
        trained = freeze_lower_layers(trainer.model, config.train_top_layers)
        control.log(f"training the top {config.train_top_layers} layers and the head ({trained:,} parameters)")
    final_step = run_hf_trainer(trainer, run, callback, control)

    metrics = last_train_metrics(trainer.state.log_history)
    model = trainer.model
    if holdout:
        scorer = RewardModelScorer(model, tokenizer, batch_size=config.score_batch_size, max_length=config.max_length)
        held = evaluate_pairs(scorer, holdout, config.tie_tolerance)
        metrics.update({f"eval_{key}": value for key, value in held.items()})
        control.log(f"held-out accuracy {held['accuracy']:.3f}, margin {held['margin']:.3f}, ties {held['tie_fraction']:.3f}")
    return write_trained_model(
        run,
        trainer,
        tokenizer,
        config,
        final_step=final_step,
        metrics=metrics,
        model_kind="reward",
        extra_manifest={"heldout_pairs": len(holdout), "train_pairs": len(train_records)},
    )


def freeze_lower_layers(model: PreTrainedModel, top_layers: int) -> int:
    """Freeze the input embeddings and every transformer layer below the top `top_layers`.

    Returns the number of parameters left trainable. The optimizer is built when training starts,
    from the parameters that still require gradients, so this must run before `train()`.
    """
    import torch

    count = model.config.get_text_config().num_hidden_layers
    layers = next((m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == count), None)
    if layers is None:
        raise ValueError("train_top_layers: cannot find the transformer layers of this architecture")
    if top_layers > count:
        raise ValueError(f"train_top_layers: the model has only {count} layers, got {top_layers}")
    frozen = [model.get_input_embeddings(), *list(layers)[: count - top_layers]]
    for module in frozen:
        for parameter in module.parameters():
            parameter.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _tokenized_pairs(
    tokenizer: PreTrainedTokenizerBase, records: Sequence[dict[str, Conversation]], max_length: int, control: RunControl
) -> Any:
    """Pairs tokenized exactly as `RewardModelScorer` will score them, ends kept when too long.

    TRL's RewardTrainer would silently *drop* every pair longer than max_length (long multi-turn
    conversations are common in HH-RLHF); the reward is read at the last token, so keeping the
    last max_length tokens loses only old context. Handing TRL tokenized ids skips its own pass.
    """
    from datasets import Dataset

    rows, truncated = [], 0
    for record in records:
        chosen = encode_conversation(tokenizer, record["prompt"] + record["chosen"], None)
        rejected = encode_conversation(tokenizer, record["prompt"] + record["rejected"], None)
        truncated += len(chosen) > max_length or len(rejected) > max_length
        rows.append({"chosen_ids": chosen[-max_length:], "rejected_ids": rejected[-max_length:]})
    if truncated:
        control.log(f"{truncated} of {len(records)} pairs exceed max_length={max_length}; their last tokens are kept")
    return Dataset.from_list(rows)


_TRAINER_CLASS: type | None = None


def _reward_trainer_class() -> type:
    """TRL's RewardTrainer plus a live tie-fraction metric (TRL logs accuracy and margin only)."""
    global _TRAINER_CLASS
    if _TRAINER_CLASS is not None:
        return _TRAINER_CLASS
    import torch
    from trl import RewardTrainer

    class RewardTrainerWithTies(RewardTrainer):
        def __init__(self, *args: Any, tie_tolerance: float = 0.0, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.tie_tolerance = tie_tolerance

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # type: ignore[no-untyped-def]
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
            with torch.no_grad():
                chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
                ties = ((chosen - rejected).abs() <= self.tie_tolerance).float().mean()
                mode = "train" if self.model.training else "eval"
                self._metrics[mode]["tie_fraction"].append(self.accelerator.gather_for_metrics(ties).mean().item())
            return (loss, outputs) if return_outputs else loss

    _TRAINER_CLASS = RewardTrainerWithTies
    return RewardTrainerWithTies
