"""Kahneman-Tversky Optimization (KTO) with TRL's KTOTrainer: learning from thumbs up / down.

KTO needs no pairs: each example is one answer to a prompt with a binary label, desirable or
undesirable, the feedback a deployed chat collects (Ethayarajh et al. 2024). The data is TRL's
unpaired format, `{"prompt": [...], "completion": [...], "label": true|false}` per line; a
preference snapshot works too, each pair giving its chosen answer as desirable and its rejected
one as undesirable (`rlhf.training.data.load_kto_examples`).

The reference is the parent policy, as for DPO: a frozen copy with full fine-tuning, the same
network with the adapter switched off with LoRA.

Class balance. The paper recommends weighting the two classes so that
λ_D·n_D / (λ_U·n_U) lies in [1, 4/3]; with `balance_classes` (the default) the minority class's
weight is multiplied by the majority/minority ratio, which puts the ratio at 1, and the log and
the manifest say which weights were used.

KL estimate. KTO's reference point is a KL term estimated from mismatched (prompt, answer)
neighbours within a batch (TRL rotates the answers of each batch by one), so batches need at least
two examples, and the examples are shuffled (seeded) so that a pair's two halves rarely sit side by
side and batches mix both classes; TRL then reads them in that order.

Metrics, live and final: loss, kl, rewards/chosen and rewards/rejected (β·log π/π_ref of the
desirable and of the undesirable answers), rewards/margins (their difference), logps/chosen,
logps/rejected. The final metrics add the same on a seeded held-out split (`eval_rewards/margins`,
...): a positive held-out margin means the policy moved towards the desirable answers, relative
to its parent, on examples it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from rlhf.config import option, override
from rlhf.models import load_causal_lm, load_tokenizer
from rlhf.progress import RunControl
from rlhf.training.callbacks import make_progress_callback
from rlhf.training.config import BaseTrainConfig, check
from rlhf.training.data import flatten_shuffled, load_kto_examples, split_holdout
from rlhf.training.devices import choose_device, seed_everything
from rlhf.training.distributed import materialize_parent
from rlhf.training.hf_trainer import (
    held_out_metrics,
    hf_training_arguments,
    last_train_metrics,
    lora_config,
    reference_dtype,
    remove_printer_callback,
    run_hf_trainer,
    train_once,
    write_trained_model,
)
from rlhf.training.run_dir import RunDir, TrainResult


@dataclass
class KTOConfig(BaseTrainConfig):
    """KTO training. Shared fields are documented on `BaseTrainConfig`; defaults differ as noted."""

    method: ClassVar[str] = "kto"

    learning_rate: float = override(
        BaseTrainConfig, "learning_rate", 1e-6, help="1e-6 (TRL's default for full fine-tuning; LoRA usually wants 5e-6 to 5e-5)."
    )
    batch_size: int = override(
        BaseTrainConfig,
        "batch_size",
        8,
        help="8 rated answers per micro-step; the KL estimate pairs each prompt with another example's answer in the batch, so 'kto' needs at least 2.",
    )
    beta: float = option(0.1, min=0.0, min_exclusive=True, help="Strength of the pull towards the reference (higher = stay closer).")
    loss_type: Literal["kto", "apo_zero_unpaired"] = option(
        "kto",
        help='"kto" (the KTO paper, with its KL reference point) or "apo_zero_unpaired" (the unpaired APO-zero loss, no KL term).',
    )
    desirable_weight: float = option(1.0, min=0.0, min_exclusive=True, help="Weight λ_D of the desirable (thumbs-up) examples' losses.")
    undesirable_weight: float = option(
        1.0, min=0.0, min_exclusive=True, help="Weight λ_U of the undesirable (thumbs-down) examples' losses."
    )
    balance_classes: bool = option(
        True,
        help="Multiply the weight of the rarer class by the majority/minority count ratio, so λ_D·n_D = λ_U·n_U (the KTO paper wants that ratio in [1, 4/3]).",
    )
    precompute_ref_log_probs: bool = option(
        False,
        help="Compute the reference log-probabilities once before training so the reference model need not stay in memory (full fine-tuning only gains from it).",
    )
    eval_fraction: float = option(
        0.1,
        min=0.0,
        max=1.0,
        max_exclusive=True,
        help="Fraction of the data lines held out (seeded; a pair's two answers together) for the final held-out metrics; 0 disables them.",
    )

    def check(self) -> None:
        super().check()
        if self.loss_type == "kto":
            check(
                self.batch_size >= 2, "batch_size", "must be >= 2 for loss_type 'kto' (its KL estimate needs another example in the batch)"
            )


def class_weights(config: KTOConfig, desirable: int, undesirable: int) -> tuple[float, float]:
    """(λ_D, λ_U) for `desirable` and `undesirable` training examples under `config`."""
    weight_d, weight_u = config.desirable_weight, config.undesirable_weight
    if config.balance_classes and desirable and undesirable:
        if desirable < undesirable:
            weight_d *= undesirable / desirable
        elif undesirable < desirable:
            weight_u *= desirable / undesirable
    return weight_d, weight_u


def train_kto(
    data_path: Path | str,
    base_model_path: Path | str,
    out_dir: Path | str,
    config: KTOConfig,
    control: RunControl | None = None,
) -> TrainResult:
    """Train a policy with KTO on rated answers (or a preference snapshot); artifact in `out_dir/final`.

    Idempotent: a finished run returns its artifact, an interrupted one resumes from its latest
    checkpoint. Raises RunCancelled (checkpoint kept) or TrainingDiverged (no artifact).
    """
    return train_once(out_dir, config, data_path, base_model_path, control, lambda run, control: _train(run, config, control))


def _train(run: RunDir, config: KTOConfig, control: RunControl) -> TrainResult:
    from datasets import Dataset
    from trl import KTOConfig as TRLKTOConfig
    from trl import KTOTrainer

    seed_everything(config.seed)
    train_groups, holdout_groups = split_holdout(load_kto_examples(run.data_path), config.eval_fraction, config.seed)
    train_examples = flatten_shuffled(train_groups, config.seed)
    holdout = flatten_shuffled(holdout_groups, config.seed)
    desirable = sum(example["label"] for example in train_examples)
    undesirable = len(train_examples) - desirable
    if not desirable or not undesirable:
        missing = "undesirable (thumbs-down)" if desirable else "desirable (thumbs-up)"
        raise ValueError(f"the training data has no {missing} examples; KTO needs both kinds")
    weight_d, weight_u = class_weights(config, desirable, undesirable)
    control.log(
        f"{len(train_examples)} training examples ({desirable} desirable, {undesirable} undesirable; "
        f"weights λ_D={weight_d:.3g}, λ_U={weight_u:.3g}), {len(holdout)} held out"
    )

    parent = materialize_parent(run.base_model, run.work_dir)
    tokenizer = load_tokenizer(parent)
    device = choose_device(config, parent)
    args = TRLKTOConfig(
        **hf_training_arguments(config, run, device),
        max_length=config.max_length,
        beta=config.beta,
        loss_type=config.loss_type,
        desirable_weight=weight_d,
        undesirable_weight=weight_u,
        precompute_ref_log_probs=config.precompute_ref_log_probs,
        disable_dropout=True,
        # The order is ours (seeded shuffle above); TRL's KL estimate needs it kept.
        train_sampling_strategy="sequential",
    )
    seed_everything(config.seed)  # LoRA initialises its A matrices randomly
    model = load_causal_lm(parent)
    # As for DPO: a frozen bf16 copy of the parent under bf16 mixed precision, None with LoRA
    # (TRL then runs the same weights with the adapter disabled, which is exactly the parent).
    ref_model = None if config.use_lora else load_causal_lm(parent, dtype=reference_dtype(device))
    callback = make_progress_callback(control)
    trainer = KTOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=Dataset.from_list(train_examples),
        processing_class=tokenizer,
        peft_config=lora_config(config, "causal_lm"),
        callbacks=[callback],
    )
    remove_printer_callback(trainer)
    dropped = len(train_examples) - len(trainer.train_dataset)
    if dropped:
        control.log(f"dropped {dropped} of {len(train_examples)} examples whose prompt fills max_length={config.max_length}")
    if len(trainer.train_dataset) == 0:
        raise ValueError(f"every prompt is longer than max_length={config.max_length} tokens; raise max_length")
    final_step = run_hf_trainer(trainer, run, callback, control)

    metrics = last_train_metrics(trainer.state.log_history)
    if holdout:
        held = trainer.evaluate(eval_dataset=Dataset.from_list(holdout))
        metrics.update(held_out_metrics(held))
        control.log(f"held-out margin {metrics.get('eval_rewards/margins', float('nan')):.4f}")
    return write_trained_model(
        run,
        trainer,
        tokenizer,
        config,
        final_step=final_step,
        metrics=metrics,
        model_kind="policy",
        extra_manifest={
            "train_examples": len(train_examples),
            "desirable_examples": desirable,
            "undesirable_examples": undesirable,
            "desirable_weight_used": weight_d,
            "undesirable_weight_used": weight_u,
            "heldout_examples": len(holdout),
        },
    )
