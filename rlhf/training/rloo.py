"""RLOO (REINFORCE Leave-One-Out, Ahmadian et al. 2024) with TRL's RLOOTrainer.

Each answer's baseline is the mean reward of the *other* answers to the same prompt, so no value
network is needed; TRL adds the KL to the reference (`beta`) to the reward. Everything else
(sampling, rewards, the loop, checkpoints, the artifact) is `online_rl`, shared with GRPO.

Metrics, live and final (TRL's names): reward, reward_std, kl, entropy, clip_ratio/*,
completions/mean_length, completions/clipped_ratio (answers cut at max_completion_length),
frac_reward_zero_std, loss, learning_rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rlhf.config import option
from rlhf.progress import RunControl
from rlhf.training.config import check
from rlhf.training.online_rl import OnlineRLConfig, train_online
from rlhf.training.rl_reward import RewardFn
from rlhf.training.run_dir import TrainResult


@dataclass
class RLOOConfig(OnlineRLConfig):
    """RLOO training. Shared fields are documented on `OnlineRLConfig` and `BaseTrainConfig`."""

    method: ClassVar[str] = "rloo"

    normalize_advantages: bool = option(False, help="Normalise advantages to zero mean, unit variance per batch.")
    reward_clip_range: list[float] | None = option(None, help="[min, max] to clip rewards to before computing advantages.")

    def check(self) -> None:
        super().check()
        if self.reward_clip_range is not None:
            check(
                len(self.reward_clip_range) == 2 and self.reward_clip_range[0] < self.reward_clip_range[1],
                "reward_clip_range",
                "must be [min, max] with min < max",
            )

    def trl_arguments(self) -> dict[str, Any]:
        return {
            "normalize_advantages": self.normalize_advantages,
            "reward_clip_range": tuple(self.reward_clip_range) if self.reward_clip_range is not None else None,
        }


def _trl_classes() -> tuple[type, type]:
    from trl import RLOOConfig as TRLRLOOConfig
    from trl import RLOOTrainer

    return TRLRLOOConfig, RLOOTrainer


def train_rloo(
    data_path: Path | str,
    base_model_path: Path | str,
    out_dir: Path | str,
    config: RLOOConfig,
    control: RunControl | None = None,
    *,
    reward_model_path: Path | str | None = None,
    reward_fn: RewardFn | None = None,
) -> TrainResult:
    """Optimise the policy with RLOO against a reward model (or callable); artifact in `out_dir/final`."""
    return train_online(_trl_classes, data_path, base_model_path, out_dir, config, control, reward_model_path, reward_fn)
