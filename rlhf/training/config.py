"""The base of every training method's config: the fields all methods share and their rules.

Each method's config subclasses `BaseTrainConfig` (through `online_rl.OnlineRLConfig` for RLOO
and GRPO); validation, `to_dict`, `config_hash` and `from_dict` come from `rlhf.config.Config`,
so a run's hash, its version's and its artifact manifest's are the same number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from rlhf.config import Config, ConfigError, check, option

__all__ = ["BaseTrainConfig", "ConfigError", "check"]


@dataclass
class BaseTrainConfig(Config):
    """Fields every method shares. Each method's config subclasses this and documents its own fields."""

    method: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.kind = cls.method  # the hash is over {"method": ..., "config": ...}, as it always was

    seed: int = option(
        0, min=0, help="Seeds Python, NumPy, torch and the data order; same seed, data and device -> same final weights and metrics on CPU."
    )
    learning_rate: float = option(1e-5, min=0.0, min_exclusive=True, help="Peak learning rate of AdamW.")
    num_train_epochs: float = option(
        1.0, min=0.0, min_exclusive=True, help="Passes over the training data; ignored when `max_steps` is set."
    )
    max_steps: int | None = option(
        None,
        min=1,
        help="If set, train exactly this many optimizer steps (PPO: this many rollout iterations) regardless of `num_train_epochs`.",
    )
    batch_size: int = option(
        4, min=1, help="Sequences (pairs for reward/DPO, completions for RLOO/GRPO, rollouts for PPO) per device per micro-step."
    )
    gradient_accumulation_steps: int = option(1, min=1, help="Micro-steps accumulated into one optimizer step.")
    lr_scheduler_type: Literal["linear", "cosine", "constant"] = option(
        "linear", help='One of "linear" (decay to 0), "cosine", "constant".'
    )
    warmup_ratio: float = option(
        0.0, min=0.0, max=1.0, max_exclusive=True, help="Fraction of the steps over which the learning rate warms up linearly, in [0, 1)."
    )
    weight_decay: float = option(0.0, min=0.0, help="AdamW weight decay.")
    max_grad_norm: float = option(1.0, min=0.0, help="Gradients are clipped to this global norm; 0 disables clipping.")
    max_length: int = option(
        512,
        min=8,
        help='Token budget of prompt + response. Reward modelling keeps the last max_length tokens of longer conversations, DPO cuts them at the end (TRL\'s "keep_start"); RL methods drop prompts that leave fewer than `max_completion_length` tokens for the answer (each with a log line saying how many).',
    )
    gradient_checkpointing: bool = option(
        False,
        help="Recompute activations in the backward pass to save memory (about 20% slower); worth it for long sequences on a GPU, not for small CPU runs.",
    )
    precision: Literal["auto", "fp32", "bf16"] = option(
        "auto",
        help='"auto" trains in bf16 mixed precision where that is faster (CUDA with bf16; CPUs with native bf16 matmuls for models of >= 100 MB) and float32 elsewhere; "fp32" forces float32; "bf16" forces bf16 autocast.',
    )
    save_steps: int = option(
        50,
        min=1,
        help="A checkpoint every this many optimizer steps (and at the last step), used for resume after a crash and kept on cancel.",
    )
    save_total_limit: int = option(2, min=1, help="Number of checkpoints kept on disk (older ones are deleted); resume needs at least one.")
    keep_checkpoints: bool = option(
        False,
        help="Keep `checkpoints/` after the final artifact is written (they hold optimizer state, several times the model's size, so they are removed by default).",
    )
    use_lora: bool = option(
        False,
        help="Train a LoRA adapter (PEFT) instead of all weights. The artifact is then the adapter alone plus a `base_model` reference, and the reference policy is the base with the adapter switched off.",
    )
    lora_r: int = option(16, min=1, help="LoRA rank.")
    lora_alpha: int = option(32, min=0, min_exclusive=True, help="LoRA scaling numerator (the update is scaled by alpha / r).")
    lora_dropout: float = option(0.05, min=0.0, max=1.0, max_exclusive=True, help="Dropout on the LoRA branch.")
    lora_target_modules: str | list[str] = option(
        "all-linear", help='Module names to adapt, or "all-linear" for every linear layer except the output head.'
    )
    num_processes: int = option(
        1,
        min=1,
        max=64,
        help="Devices (GPUs) to train on. Above 1 the worker starts the run through `accelerate launch` (one process per device; `batch_size` is per device, so the global batch is batch_size x num_processes x gradient_accumulation_steps). PPO is single-device.",
    )
    distributed_strategy: Literal["ddp", "fsdp"] = option(
        "ddp",
        help='With num_processes > 1: "ddp" (a full copy of the model per device, gradients all-reduced) or "fsdp" (parameters, gradients and optimizer state sharded across devices, for models that do not fit one GPU).',
    )

    def check(self) -> None:
        """Rules across fields; the limits of single fields are in their `option(...)` above."""
        if isinstance(self.lora_target_modules, list):
            check(
                len(self.lora_target_modules) > 0 and all(self.lora_target_modules),
                "lora_target_modules",
                "must be 'all-linear' or a non-empty list of module names",
            )
        else:
            check(bool(self.lora_target_modules), "lora_target_modules", "must not be empty")

    def total_batch(self) -> int:
        return self.batch_size * self.gradient_accumulation_steps
