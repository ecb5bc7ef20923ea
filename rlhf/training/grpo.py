"""GRPO (Group Relative Policy Optimization, Shao et al. 2024) with TRL's GRPOTrainer.

For each prompt the policy samples `num_generations` answers; an answer's advantage is its reward
minus the group mean, scaled (by default) by the group's standard deviation, so no value network
is needed. The reward is a reward-model version (through `reward.RewardModelScorer`) or any
callable in TRL's reward-function convention. The reference for the KL term is the parent policy
(with LoRA: the adapter switched off).

One default differs from TRL on purpose: `beta` is 0.04 (DeepSeekMath's value), not TRL's 0.0.
With beta 0 TRL loads no reference and reports no KL, and this service promises a policy that
stays near its parent with the KL on the run page.

Prompts come from the snapshot's `prompt` field, de-duplicated; prompts that leave fewer than
`max_completion_length` tokens of the `max_length` budget are dropped (and counted in the log).

Metrics, live and final (TRL's names): reward, reward_std, kl, entropy, clip_ratio/*,
completions/mean_length, completions/clipped_ratio, frac_reward_zero_std, loss, learning_rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from rlhf.progress import NullControl, RunControl
from rlhf.training.common import (
    BaseTrainConfig,
    RewardFn,
    RunDir,
    TrainResult,
    check,
    choose_device,
    epoch_seeded,
    filter_prompts_by_length,
    hf_training_arguments,
    last_train_metrics,
    load_prompts,
    load_reward,
    load_tokenizer,
    lora_config,
    make_progress_callback,
    make_step_seed_callback,
    materialize_parent,
    quiet_transformers,
    remove_printer_callback,
    reward_identity,
    run_hf_trainer,
    save_model_weights,
    seed_everything,
)

# GRPOTrainer's loss types in TRL 1.16 (trl/trainer/grpo_config.py); a test checks the installed TRL.
GRPO_LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")


@dataclass
class GRPOConfig(BaseTrainConfig):
    """GRPO training. Shared fields are documented on `BaseTrainConfig`; defaults differ as noted.

    Attributes:
        learning_rate: 1e-6 (TRL's default for full fine-tuning; LoRA wants ~1e-5).
        batch_size: 8 completions per micro-step; `batch_size * gradient_accumulation_steps` must be
            a multiple of `num_generations` (whole prompt groups per optimizer step).
        num_generations: 4. Answers sampled per prompt (>= 2: advantages are relative to the group).
        max_completion_length: 64. Maximum tokens per answer.
        temperature: 1.0. Sampling temperature.
        top_p: 1.0. Nucleus sampling mass, in (0, 1].
        top_k: 0. Top-k sampling; 0 disables it.
        beta: 0.04. KL coefficient towards the reference (TRL defaults to 0.0; see module docstring).
        num_iterations: 1. Optimisation passes over each batch of samples (μ).
        epsilon: 0.2. Lower clip range of the importance ratio.
        epsilon_high: None. Upper clip range (None = `epsilon`; DAPO suggests 0.28).
        loss_type: "dapo". How token losses are aggregated, one of `GRPO_LOSS_TYPES`: "grpo"
            (per-sequence mean, length-biased), "dr_grpo" (constant normaliser), "dapo" (tokens of the
            accumulated batch), "bnpo" (tokens of the local batch), "cispo", "sapo", "luspo"
            (needs importance_sampling_level "sequence"), "vespo".
        scale_rewards: "group". Divide advantages by the reward std of the "group", the "batch", or
            not at all ("none", as Dr. GRPO recommends).
        importance_sampling_level: "token". Importance ratios per "token" or per "sequence" (GSPO).
        mask_truncated_completions: False. Leave answers cut at max_completion_length out of the loss.
    """

    method: ClassVar[str] = "grpo"

    learning_rate: float = 1e-6
    batch_size: int = 8
    num_generations: int = 4
    max_completion_length: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    beta: float = 0.04
    num_iterations: int = 1
    epsilon: float = 0.2
    epsilon_high: float | None = None
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"] = "dapo"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    importance_sampling_level: Literal["token", "sequence"] = "token"
    mask_truncated_completions: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.num_generations >= 2, "num_generations", "must be >= 2 (advantages are relative to the group)")
        check(
            self.total_batch() % self.num_generations == 0,
            "batch_size",
            f"batch_size * gradient_accumulation_steps ({self.total_batch()}) must be a multiple of "
            f"num_generations ({self.num_generations})",
        )
        check(self.max_completion_length >= 1, "max_completion_length", "must be >= 1")
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
        if self.loss_type == "luspo":
            check(
                self.importance_sampling_level == "sequence",
                "importance_sampling_level",
                "must be 'sequence' for loss_type 'luspo'",
            )
        if self.loss_type == "vespo":
            check(
                self.importance_sampling_level == "token",
                "importance_sampling_level",
                "must be 'token' for loss_type 'vespo'",
            )


def train_grpo(
    data_path: Path | str,
    base_model_path: Path | str,
    out_dir: Path | str,
    config: GRPOConfig,
    control: RunControl | None = None,
    *,
    reward_model_path: Path | str | None = None,
    reward_fn: RewardFn | None = None,
) -> TrainResult:
    """Optimise the policy with GRPO against a reward model (or callable); artifact in `out_dir/final`.

    Idempotent and resumable like the other methods; raises RunCancelled (checkpoint kept) or
    TrainingDiverged (no artifact).
    """
    identity = reward_identity("grpo", reward_model_path, reward_fn)
    control = control or NullControl()
    run = RunDir.prepare(out_dir, "grpo", config, data_path, base_model_path, extra_identity=identity)
    if (done := run.finished()) is not None:
        control.log("run already finished; returning its artifact")
        return done
    with quiet_transformers():
        return _train(run, config, control, reward_model_path, reward_fn)


def _train(
    run: RunDir,
    config: GRPOConfig,
    control: RunControl,
    reward_model_path: Path | str | None,
    reward_fn: RewardFn | None,
) -> TrainResult:
    from datasets import Dataset
    from trl import GRPOConfig as TRLGRPOConfig
    from trl import GRPOTrainer

    seed_everything(config.seed)
    device = choose_device(config)
    parent = materialize_parent(run.base_model, run.work_dir)
    tokenizer = load_tokenizer(parent)
    tokenizer.padding_side = "left"  # generation appends on the right; TRL requires left padding
    prompts = filter_prompts_by_length(tokenizer, load_prompts(run.data_path), config.max_length - config.max_completion_length, control)
    control.log(f"{len(prompts)} prompts, {config.num_generations} answers each")
    reward = load_reward(reward_model_path, reward_fn, device, config.max_length)

    args = TRLGRPOConfig(
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
        loss_type=config.loss_type,
        scale_rewards=config.scale_rewards,
        importance_sampling_level=config.importance_sampling_level,
        mask_truncated_completions=config.mask_truncated_completions,
    )
    callback = make_progress_callback(control)
    trainer = _resumable(GRPOTrainer)(
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
    """GRPOTrainer whose prompt order per epoch survives a resume (see `common.epoch_seeded`)."""

    class ResumableGRPOTrainer(trainer_class):  # type: ignore[misc, valid-type]
        def _get_train_sampler(self, dataset=None):  # type: ignore[no-untyped-def]
            return epoch_seeded(super()._get_train_sampler(dataset))

    return ResumableGRPOTrainer
