"""Direct Preference Optimization with TRL's DPOTrainer.

The reference policy is the parent policy the run starts from: with full fine-tuning a frozen copy
of it is loaded next to the trained one; with LoRA there is no copy, the reference is the same
network with the adapter switched off (TRL's `ref_model=None` path), which halves the memory.

Loss variants are TRL's (`loss_type`, several can be combined with `loss_weights`); the ones people
usually want are "sigmoid" (DPO), "ipo" (IPO, length-normalised), "sigmoid_norm" (length-normalised
DPO), "hinge" (SLiC), "robust" (rDPO, with `label_smoothing`), "apo_zero" and "sppo_hard".

Pairs longer than `max_length` are cut at the end (TRL's "keep_start"); pairs whose prompt alone
fills `max_length` are dropped by TRL, and the log says how many.

Metrics, live and final: loss, rewards/chosen and rewards/rejected (β·log π/π_ref of each answer),
rewards/margins (their difference), rewards/accuracies (fraction of pairs with a positive margin),
logps/chosen, logps/rejected. The final metrics add the same on a seeded held-out split
(`eval_rewards/margins`, ...): a positive held-out margin means the policy moved towards the
preferred answers relative to its parent on pairs it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from rlhf.config import option, override
from rlhf.models import load_causal_lm, load_tokenizer
from rlhf.progress import RunControl
from rlhf.training import shared_prefix
from rlhf.training.callbacks import make_progress_callback
from rlhf.training.config import BaseTrainConfig, check
from rlhf.training.data import load_preference_records, split_holdout
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

# The loss types DPOTrainer accepts in TRL 1.16 (trl/trainer/dpo_trainer.py, `_compute_loss`). Kept
# here rather than read from TRL so that validating a config never imports torch; a test checks
# that this list matches the installed TRL.
DPO_LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)
# Losses built on the chosen-minus-rejected reward difference, the only ones TRL lets use a
# non-default f-divergence.
_F_DIVERGENCE_LOSS_TYPES = {"sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust", "discopop", "sft"}


@dataclass
class DPOConfig(BaseTrainConfig):
    """DPO training. Shared fields are documented on `BaseTrainConfig`; defaults differ as noted."""

    method: ClassVar[str] = "dpo"

    learning_rate: float = override(
        BaseTrainConfig, "learning_rate", 1e-6, help="1e-6 (TRL's default for full fine-tuning; LoRA usually wants 5e-6 to 5e-5)."
    )
    batch_size: int = override(BaseTrainConfig, "batch_size", 4, help="4 pairs per micro-step.")
    beta: float = option(
        0.1,
        min=0.0,
        min_exclusive=True,
        help='Strength of the pull towards the reference (higher = stay closer). For "ipo" it is the regulariser τ of the IPO paper.',
    )
    loss_type: str | list[str] = option(
        default_factory=lambda: ["sigmoid"], help="One or more of `DPO_LOSS_TYPES` (a single string is accepted)."
    )
    loss_weights: list[float] | None = option(None, help="Weights of the losses when several are combined; None = all 1.0.")
    label_smoothing: float = option(
        0.0,
        min=0.0,
        max=1.0,
        max_exclusive=True,
        help='Probability that a label is flipped for "robust" (must be < 0.5) and the ε of "exo_pair" (must be > 0 there; the paper uses 1e-3).',
    )
    ld_alpha: float | None = option(
        None,
        min=0.0,
        max=1.0,
        help="LD-DPO weight of the part of the longer answer beyond the shorter one's length, in [0, 1]; None = plain DPO.",
    )
    f_divergence_type: Literal["reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"] = option(
        "reverse_kl",
        help='The divergence regularising towards the reference (f-DPO): "reverse_kl", "forward_kl", "js_divergence" or "alpha_divergence".',
    )
    f_alpha_divergence_coef: float = option(0.5, min=0.0, min_exclusive=True, help='α of "alpha_divergence".')
    use_weighting: bool = option(False, help="WPO weighting of pairs by the policy's own probability of them.")
    discopop_tau: float = option(0.05, min=0.0, min_exclusive=True, help='Temperature of the "discopop" loss.')
    precompute_ref_log_probs: bool = option(
        False,
        help="Compute the reference log-probabilities once before training so the reference model need not stay in memory (full fine-tuning only gains from it).",
    )
    eval_fraction: float = option(
        0.1,
        min=0.0,
        max=1.0,
        max_exclusive=True,
        help="Fraction of pairs held out (seeded) for the final held-out metrics; 0 disables them.",
    )
    shared_prefix: bool = option(
        True,
        help="Run each pair's prompt through the policy (and the reference) once for both answers, on a key/value cache, and the LM head over answer tokens only, instead of TRL's one full row per answer (`rlhf/training/shared_prefix.py`). Same losses and gradients up to float rounding, less compute the longer the prompts. Not used with gradient checkpointing or FSDP (TRL's forward runs there).",
    )

    def check(self) -> None:
        super().check()
        if isinstance(self.loss_type, str):
            self.loss_type = [self.loss_type]  # one canonical form, so equal configs hash equal
        check(len(self.loss_type) > 0, "loss_type", "must name at least one loss")
        for loss in self.loss_type:
            check(loss in DPO_LOSS_TYPES, "loss_type", f"unknown loss {loss!r}; TRL offers {', '.join(DPO_LOSS_TYPES)}")
        check(len(set(self.loss_type)) == len(self.loss_type), "loss_type", "lists a loss twice")
        if self.loss_weights is not None:
            check(
                len(self.loss_weights) == len(self.loss_type),
                "loss_weights",
                f"needs one weight per loss type ({len(self.loss_type)}), got {len(self.loss_weights)}",
            )
            check(all(weight >= 0 for weight in self.loss_weights), "loss_weights", "must be >= 0")
        if "robust" in self.loss_type:
            check(self.label_smoothing < 0.5, "label_smoothing", "must be < 0.5 for the 'robust' loss")
        if "exo_pair" in self.loss_type:
            check(self.label_smoothing > 0, "label_smoothing", "must be > 0 for the 'exo_pair' loss (e.g. 1e-3)")
        if self.f_divergence_type != "reverse_kl":
            unsupported = sorted(set(self.loss_type) - _F_DIVERGENCE_LOSS_TYPES)
            check(
                not unsupported,
                "f_divergence_type",
                f"{self.f_divergence_type!r} cannot be combined with loss {', '.join(unsupported)}",
            )
        if self.use_weighting:
            check(
                not {"aot", "aot_unpaired"} & set(self.loss_type),
                "use_weighting",
                "is not available with the 'aot' losses (they sort pairs)",
            )


def train_dpo(
    data_path: Path | str,
    base_model_path: Path | str,
    out_dir: Path | str,
    config: DPOConfig,
    control: RunControl | None = None,
) -> TrainResult:
    """Train a policy with DPO on a preference snapshot; returns the artifact in `out_dir/final`.

    Idempotent: a finished run returns its artifact, an interrupted one resumes from its latest
    checkpoint. Raises RunCancelled (checkpoint kept) or TrainingDiverged (no artifact).
    """
    return train_once(out_dir, config, data_path, base_model_path, control, lambda run, control: _train(run, config, control))


def _train(run: RunDir, config: DPOConfig, control: RunControl) -> TrainResult:
    from datasets import Dataset
    from trl import DPOConfig as TRLDPOConfig
    from trl import DPOTrainer

    seed_everything(config.seed)
    records = load_preference_records(run.data_path)
    train_records, holdout = split_holdout(records, config.eval_fraction, config.seed)
    control.log(f"{len(train_records)} training pairs, {len(holdout)} held out")

    parent = materialize_parent(run.base_model, run.work_dir)
    tokenizer = load_tokenizer(parent)
    device = choose_device(config, parent)
    args = TRLDPOConfig(
        **hf_training_arguments(config, run, device),
        max_length=config.max_length,
        beta=config.beta,
        loss_type=list(config.loss_type),
        loss_weights=config.loss_weights,
        label_smoothing=config.label_smoothing,
        ld_alpha=config.ld_alpha,
        f_divergence_type=config.f_divergence_type,
        f_alpha_divergence_coef=config.f_alpha_divergence_coef,
        use_weighting=config.use_weighting,
        discopop_tau=config.discopop_tau,
        precompute_ref_log_probs=config.precompute_ref_log_probs,
        disable_dropout=True,
    )
    seed_everything(config.seed)  # LoRA initialises its A matrices randomly
    model = load_causal_lm(parent)
    # Full fine-tuning: the reference is a frozen copy of the parent. LoRA: None, and TRL runs the
    # same weights with the adapter disabled, which is exactly the parent. (bf16 under bf16 mixed
    # precision: see reference_dtype.)
    ref_model = None if config.use_lora else load_causal_lm(parent, dtype=reference_dtype(device))
    callback = make_progress_callback(control)
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=Dataset.from_list(train_records),
        processing_class=tokenizer,
        peft_config=lora_config(config, "causal_lm"),
        callbacks=[callback],
    )
    remove_printer_callback(trainer)
    if shared_prefix.usable(config):
        _share_prompts(trainer, config)
    # TRL silently drops pairs whose prompt alone fills max_length (nothing left to compare).
    dropped = len(train_records) - len(trainer.train_dataset)
    if dropped:
        control.log(f"dropped {dropped} of {len(train_records)} pairs whose prompt fills max_length={config.max_length}")
    if len(trainer.train_dataset) == 0:
        raise ValueError(f"every prompt is longer than max_length={config.max_length} tokens; raise max_length")
    final_step = run_hf_trainer(trainer, run, callback, control)

    metrics = last_train_metrics(trainer.state.log_history)
    if holdout:
        held = trainer.evaluate(eval_dataset=Dataset.from_list(holdout))
        metrics.update(held_out_metrics(held))
        control.log(
            f"held-out margin {metrics.get('eval_rewards/margins', float('nan')):.4f}, "
            f"accuracy {metrics.get('eval_rewards/accuracies', float('nan')):.3f}"
        )
    return write_trained_model(
        run,
        trainer,
        tokenizer,
        config,
        final_step=final_step,
        metrics=metrics,
        model_kind="policy",
        extra_manifest={"heldout_pairs": len(holdout), "train_pairs": len(train_records)},
    )


def _share_prompts(trainer: Any, config: DPOConfig) -> None:
    """Give the policy and reference the shared-prefix forward, on top of TRL's fused LM head."""
    # The per-token fields TRL's DPOTrainer asks its fused head for (its __init__).
    outputs = ("log_probs", "entropy", "mean_logits", "is_top1") + (("log_sum_sq_probs",) if config.use_weighting else ())
    shared_prefix.install_shared_prefix_forward(shared_prefix.module_to_wrap(trainer, trainer.model), outputs=outputs)
    if trainer.ref_model is not None:
        shared_prefix.install_shared_prefix_forward(shared_prefix.module_to_wrap(trainer, trainer.ref_model))
