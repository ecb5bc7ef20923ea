"""A round's settings: one dataclass, validated by `rlhf.config`, stored whole on the round."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from feedback_site.generation.config import PairingConfig
from rlhf.config import Config, ConfigError, option, override
from rlhf.evaluation import EvaluationConfig
from rlhf.generation import SamplingConfig


@dataclass
class RoundConfig(Config):
    """One round: generate on the current policy, collect judgments, train, evaluate, promote."""

    kind: ClassVar[str] = "round"

    method: Literal["dpo", "kto", "ppo", "rloo", "grpo"] = option(
        "dpo",
        help="How the policy learns from the round's judgments: DPO or KTO directly, or PPO, RLOO or GRPO against a reward model trained first.",
    )
    k: int = override(PairingConfig, "k")
    temperature: float = override(SamplingConfig, "temperature", 0.9)
    max_new_tokens: int = override(SamplingConfig, "max_new_tokens", 64)
    seed: int = override(SamplingConfig, "seed")
    batch_size: int = override(SamplingConfig, "batch_size", 8)
    training: dict = option(default_factory=dict, help="The method's training config (see the training page); defaults fill the rest.")
    reward_training: dict = option(default_factory=dict, help="The reward model's training config, for PPO, RLOO and GRPO.")
    evaluation: dict = option(default_factory=dict, help="The evaluation config of the round's candidate policy.")
    promotion: Literal["auto", "manual"] = option(
        "auto", help='"auto" promotes when the lower bound of the win-rate interval is above 50%; "manual" waits for staff.'
    )
    rounds: int = option(1, min=1, max=100, help="Rounds to run one after another.")

    def check(self) -> None:
        from rlhf.training import METHODS_NEEDING_REWARD, config_from_dict

        self.training = _nested("training", lambda: config_from_dict(self.method, self.training, check_reward_model=False))
        if self.method in METHODS_NEEDING_REWARD:
            self.reward_training = _nested("reward_training", lambda: config_from_dict("reward", self.reward_training))
        self.evaluation = _nested("evaluation", lambda: EvaluationConfig.from_dict(self.evaluation))


def _nested(name: str, build: Any) -> dict:
    try:
        return build().to_dict()
    except ValueError as error:
        raise ConfigError(name, str(error)) from None
