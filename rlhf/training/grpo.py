"""GRPO (Group Relative Policy Optimization, Shao et al. 2024) with TRL's GRPOTrainer.

An answer's advantage is its reward minus the mean of its prompt's group, scaled (by default) by
the group's standard deviation, so no value network is needed. Everything else (sampling,
rewards, the loop, checkpoints, the artifact) is `online_rl`, shared with RLOO.

One default differs from TRL on purpose: `beta` is 0.04 (DeepSeekMath's value), not TRL's 0.0.
With beta 0 TRL loads no reference and reports no KL, and this service promises a policy that
stays near its parent with the KL on the run page.

Metrics, live and final (TRL's names): reward, reward_std, kl, entropy, clip_ratio/*,
completions/mean_length, completions/clipped_ratio, frac_reward_zero_std, loss, learning_rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from rlhf.config import option, override
from rlhf.progress import RunControl
from rlhf.training.config import check
from rlhf.training.online_rl import OnlineRLConfig, train_online
from rlhf.training.rl_reward import RewardFn
from rlhf.training.run_dir import TrainResult

# GRPOTrainer's loss types in TRL 1.16 (trl/trainer/grpo_config.py); a test checks the installed TRL.
GRPO_LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")


@dataclass
class GRPOConfig(OnlineRLConfig):
    """GRPO training. Shared fields are documented on `OnlineRLConfig` and `BaseTrainConfig`; defaults differ as noted."""

    method: ClassVar[str] = "grpo"

    beta: float = override(
        OnlineRLConfig, "beta", 0.04, help="KL coefficient towards the reference (TRL defaults to 0.0; see module docstring)."
    )
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"] = option(
        "dapo",
        help='How token losses are aggregated, one of `GRPO_LOSS_TYPES`: "grpo" (per-sequence mean, length-biased), "dr_grpo" (constant normaliser), "dapo" (tokens of the accumulated batch), "bnpo" (tokens of the local batch), "cispo", "sapo", "luspo" (needs importance_sampling_level "sequence"), "vespo".',
    )
    scale_rewards: Literal["group", "batch", "none"] = option(
        "group", help='Divide advantages by the reward std of the "group", the "batch", or not at all ("none", as Dr. GRPO recommends).'
    )
    importance_sampling_level: Literal["token", "sequence"] = option(
        "token", help='Importance ratios per "token" or per "sequence" (GSPO).'
    )

    def check(self) -> None:
        super().check()
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

    def trl_arguments(self) -> dict[str, Any]:
        return {
            "loss_type": self.loss_type,
            "scale_rewards": self.scale_rewards,
            "importance_sampling_level": self.importance_sampling_level,
        }


def _trl_classes() -> tuple[type, type]:
    from trl import GRPOConfig as TRLGRPOConfig
    from trl import GRPOTrainer

    return TRLGRPOConfig, GRPOTrainer


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
    """Optimise the policy with GRPO against a reward model (or callable); artifact in `out_dir/final`."""
    return train_online(_trl_classes, data_path, base_model_path, out_dir, config, control, reward_model_path, reward_fn)
