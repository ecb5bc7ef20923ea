"""What RLOO and GRPO share: sampling answers online, scoring them, and TRL's trainer loop.

Both sample `num_generations` answers per prompt from the policy being trained, score them with
a reward model (through `rlhf.scoring.RewardModelScorer`, which formats prompt + answer exactly
as the reward model was trained) or any callable in TRL's reward-function convention, and
optimise a clipped policy-gradient loss against a baseline computed from the other answers, with
a KL term to the parent policy (with LoRA: the adapter switched off). They differ only in the
advantage estimator and a few options, which each method's module declares (`rloo`, `grpo`).

Prompts come from the snapshot's `prompt` field, de-duplicated; prompts that leave fewer than
`max_completion_length` tokens of the `max_length` budget are dropped (and counted in the log).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhf.config import option, override
from rlhf.models import load_tokenizer
from rlhf.progress import RunControl
from rlhf.training.callbacks import epoch_seeded, make_progress_callback, make_step_seed_callback
from rlhf.training.config import BaseTrainConfig, check
from rlhf.training.data import load_prompts
from rlhf.training.devices import choose_device, seed_everything
from rlhf.training.distributed import materialize_parent
from rlhf.training.hf_trainer import (
    hf_training_arguments,
    last_train_metrics,
    lora_config,
    remove_printer_callback,
    run_hf_trainer,
    train_once,
)
from rlhf.training.rl_reward import RewardFn, filter_prompts_by_length, load_reward, reward_identity
from rlhf.training.run_dir import RunDir, TrainResult, save_model_weights


@dataclass
class OnlineRLConfig(BaseTrainConfig):
    """Fields RLOO and GRPO share. Shared training fields are documented on `BaseTrainConfig`."""

    learning_rate: float = override(
        BaseTrainConfig, "learning_rate", 1e-6, help="1e-6 (TRL's default for full fine-tuning; LoRA wants ~1e-5)."
    )
    batch_size: int = override(
        BaseTrainConfig,
        "batch_size",
        8,
        help="8 completions per micro-step; `batch_size * gradient_accumulation_steps` must be a multiple of `num_generations` (whole prompt groups per optimizer step).",
    )
    num_generations: int = option(4, min=2, help="Answers sampled per prompt (>= 2: the baseline needs the other answers).")
    max_completion_length: int = option(64, min=1, help="Maximum tokens per answer.")
    temperature: float = option(1.0, min=0.0, min_exclusive=True, help="Sampling temperature.")
    top_p: float = option(1.0, min=0.0, max=1.0, min_exclusive=True, help="Nucleus sampling mass, in (0, 1].")
    top_k: int = option(0, min=0, help="Top-k sampling; 0 disables it.")
    beta: float = option(0.05, min=0.0, help="KL coefficient towards the reference; 0 skips the reference entirely.")
    num_iterations: int = option(1, min=1, help="Optimisation passes over each batch of samples (μ).")
    epsilon: float = option(0.2, min=0.0, min_exclusive=True, help="Lower clip range of the importance ratio.")
    epsilon_high: float | None = option(None, min=0.0, min_exclusive=True, help="Upper clip range (None = `epsilon`; DAPO suggests 0.28).")
    mask_truncated_completions: bool = option(False, help="Leave answers cut at max_completion_length out of the loss.")

    def check(self) -> None:
        super().check()
        check(
            self.total_batch() % self.num_generations == 0,
            "batch_size",
            f"batch_size * gradient_accumulation_steps ({self.total_batch()}) must be a multiple of "
            f"num_generations ({self.num_generations})",
        )
        check(
            self.max_completion_length < self.max_length,
            "max_completion_length",
            f"must be < max_length ({self.max_length}) to leave room for the prompt",
        )
        check(self.temperature > 0, "temperature", "must be > 0")
        check(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        check(self.top_k >= 0, "top_k", "must be >= 0")
        check(self.beta >= 0, "beta", "must be >= 0")
        check(self.num_iterations >= 1, "num_iterations", "must be >= 1")
        check(self.epsilon > 0, "epsilon", "must be > 0")
        check(
            self.epsilon_high is None or self.epsilon_high >= self.epsilon,
            "epsilon_high",
            "must be >= epsilon (or null)",
        )

    def trl_arguments(self) -> dict[str, Any]:
        """The method's own TRL config arguments, beyond the shared ones (each method overrides)."""
        return {}


def train_online(
    trainer_class: Callable[[], tuple[type, type]],
    data_path: Path | str,
    base_model_path: Path | str,
    out_dir: Path | str,
    config: OnlineRLConfig,
    control: RunControl | None,
    reward_model_path: Path | str | None,
    reward_fn: RewardFn | None,
) -> TrainResult:
    """Optimise the policy online against a reward model (or callable); artifact in `out_dir/final`.

    `trainer_class()` returns (TRL config class, TRL trainer class), imported only when a run
    starts. Idempotent and resumable like the other methods; raises RunCancelled (checkpoint
    kept) or TrainingDiverged (no artifact).
    """
    identity = reward_identity(config.method, reward_model_path, reward_fn)

    def train(run: RunDir, control: RunControl) -> TrainResult:
        trl_config_class, trl_trainer_class = trainer_class()
        return _train(run, config, control, reward_model_path, reward_fn, trl_config_class, trl_trainer_class)

    return train_once(out_dir, config, data_path, base_model_path, control, train, extra_identity=identity)


def _train(
    run: RunDir,
    config: OnlineRLConfig,
    control: RunControl,
    reward_model_path: Path | str | None,
    reward_fn: RewardFn | None,
    trl_config_class: type,
    trl_trainer_class: type,
) -> TrainResult:
    from datasets import Dataset

    seed_everything(config.seed)
    device = choose_device(config)
    parent = materialize_parent(run.base_model, run.work_dir)
    tokenizer = load_tokenizer(parent, padding_side="left")  # generation appends on the right; TRL requires left padding
    prompts = filter_prompts_by_length(tokenizer, load_prompts(run.data_path), config.max_length - config.max_completion_length, control)
    control.log(f"{len(prompts)} prompts, {config.num_generations} answers each")
    reward = load_reward(reward_model_path, reward_fn, device, config.max_length)

    args = trl_config_class(
        **hf_training_arguments(config, run, device),
        model_init_kwargs={"dtype": "float32"},
        disable_dropout=True,
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        beta=config.beta,
        num_iterations=config.num_iterations,
        epsilon=config.epsilon,
        epsilon_high=config.epsilon_high,
        mask_truncated_completions=config.mask_truncated_completions,
        **config.trl_arguments(),
    )
    callback = make_progress_callback(control)
    trainer = _resumable(trl_trainer_class)(
        model=str(parent),
        reward_funcs=reward,
        args=args,
        train_dataset=Dataset.from_list([{"prompt": prompt} for prompt in prompts]),
        processing_class=tokenizer,
        peft_config=lora_config(config, "causal_lm"),
        callbacks=[callback, make_step_seed_callback(config.seed)],
    )
    remove_printer_callback(trainer)
    final_step = run_hf_trainer(trainer, run, callback, control)
    model = trainer.model
    return run.write_final(
        save_weights=lambda target: save_model_weights(model, target, base_model=run.base_model),
        tokenizer=tokenizer,
        final_step=final_step,
        metrics=last_train_metrics(trainer.state.log_history),
        artifact_type="lora_adapter" if config.use_lora else "full",
        model_kind="policy",
        extra_manifest={**reward_identity(run.method, reward_model_path, reward_fn), "prompts": len(prompts)},
    )


def _resumable(trainer_class: type) -> type:
    """The TRL trainer, with a prompt order per epoch that survives a resume (see `callbacks.epoch_seeded`)."""

    class Resumable(trainer_class):  # type: ignore[misc, valid-type]
        def _get_train_sampler(self, dataset=None):  # type: ignore[no-untyped-def]
            return epoch_seeded(super()._get_train_sampler(dataset))

    Resumable.__name__ = Resumable.__qualname__ = f"Resumable{trainer_class.__name__}"
    return Resumable
