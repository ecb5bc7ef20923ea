"""Training: SFT, reward model, DPO, KTO, PPO, RLOO and GRPO behind one entry point.

    from rlhf.training import config_from_dict, train

    config = config_from_dict("dpo", {"learning_rate": 5e-6, "use_lora": True})   # validate early
    result = train("dpo", "snapshot.jsonl", "models/parent", "runs/42", config, control=control)
    result.artifact_dir  # runs/42/final: weights or adapter, tokenizer, manifest.json

`config_from_dict` is what the site calls before queueing a run: it raises ValueError naming the
method, field or value that is wrong. It imports neither torch nor TRL (the web process must not),
and neither does importing this package; `train` loads the method's module only when called.

`train` is idempotent per output folder: calling it again after a crash resumes from the latest
checkpoint, and calling it after success returns the finished artifact (see `run_dir` for the layout).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlhf.progress import RunCancelled, RunControl
from rlhf.training.callbacks import TrainingDiverged
from rlhf.training.config import BaseTrainConfig
from rlhf.training.dpo import DPOConfig
from rlhf.training.grpo import GRPOConfig
from rlhf.training.kto import KTOConfig
from rlhf.training.ppo import PPOConfig
from rlhf.training.reward import RewardConfig
from rlhf.training.rl_reward import RewardFn
from rlhf.training.rloo import RLOOConfig
from rlhf.training.run_dir import TrainResult
from rlhf.training.sft import SFTConfig

METHODS: tuple[str, ...] = ("sft", "reward", "dpo", "kto", "ppo", "rloo", "grpo")
"""Every training method, in the order a round usually runs them."""

METHODS_NEEDING_REWARD: frozenset[str] = frozenset({"ppo", "rloo", "grpo"})
"""Methods that optimise against a reward (a reward-model version, or a callable in tests)."""

CONFIG_CLASSES: dict[str, type[BaseTrainConfig]] = {
    "sft": SFTConfig,
    "reward": RewardConfig,
    "dpo": DPOConfig,
    "kto": KTOConfig,
    "ppo": PPOConfig,
    "rloo": RLOOConfig,
    "grpo": GRPOConfig,
}

_ENTRY_POINTS = {
    "sft": ("rlhf.training.sft", "train_sft"),
    "reward": ("rlhf.training.reward", "train_reward"),
    "dpo": ("rlhf.training.dpo", "train_dpo"),
    "kto": ("rlhf.training.kto", "train_kto"),
    "ppo": ("rlhf.training.ppo", "train_ppo"),
    "rloo": ("rlhf.training.rloo", "train_rloo"),
    "grpo": ("rlhf.training.grpo", "train_grpo"),
}

__all__ = [
    "CONFIG_CLASSES",
    "METHODS",
    "METHODS_NEEDING_REWARD",
    "BaseTrainConfig",
    "DPOConfig",
    "GRPOConfig",
    "KTOConfig",
    "PPOConfig",
    "RLOOConfig",
    "RewardConfig",
    "SFTConfig",
    "RunCancelled",
    "TrainResult",
    "TrainingDiverged",
    "config_from_dict",
    "train",
]


def _check_method(method: str) -> None:
    if method not in CONFIG_CLASSES:
        raise ValueError(f"method: unknown training method {method!r}; choose one of {', '.join(METHODS)}")


def config_from_dict(
    method: str,
    data: Mapping[str, Any] | None = None,
    *,
    reward_model: str | Path | RewardFn | None = None,
    check_reward_model: bool = True,
) -> BaseTrainConfig:
    """Validate a JSON config for `method` and return its dataclass (defaults filled in).

    Raises ValueError naming the problem: an unknown method, an unknown field, a value of the
    wrong type or out of range, or, for ppo/rloo/grpo, a missing reward model (pass the chosen
    reward-model version as `reward_model`, or `check_reward_model=False` to validate the config
    alone, e.g. in a form before the reward model is picked).
    """
    _check_method(method)
    if data is not None and not isinstance(data, Mapping):
        raise ValueError(f"config: expected a JSON object, got {type(data).__name__}")
    if check_reward_model and method in METHODS_NEEDING_REWARD and reward_model is None:
        raise ValueError(f"reward_model: method {method!r} needs a reward model to optimise against")
    config = CONFIG_CLASSES[method].from_dict(data)
    return config


def train(
    method: str,
    data_path: str | Path,
    base_model_path: str | Path,
    out_dir: str | Path,
    config: Mapping[str, Any] | BaseTrainConfig | None = None,
    control: RunControl | None = None,
    reward_model_path: str | Path | None = None,
    *,
    reward_fn: RewardFn | None = None,
) -> TrainResult:
    """Train `method` on a snapshot, starting from the policy (or backbone) in `base_model_path`.

    `config` is the method's dataclass or a JSON dict (validated with `config_from_dict`).
    ppo/rloo/grpo need `reward_model_path` (a reward-model artifact) or, in tests and scripts,
    `reward_fn` (a callable in TRL's convention). Progress, log lines and cancellation go through
    `control`. Raises RunCancelled when cancelled (checkpoint kept, call again to resume) and
    TrainingDiverged when the loss turns NaN (nothing is written; retrying will not help).
    """
    _check_method(method)
    reward: str | Path | RewardFn | None = reward_model_path if reward_model_path is not None else reward_fn
    if isinstance(config, BaseTrainConfig):
        if config.method != method:
            raise ValueError(f"config: a {config.method} config was given for method {method!r}")
        if method in METHODS_NEEDING_REWARD and reward is None:
            raise ValueError(f"reward_model: method {method!r} needs a reward model to optimise against")
    else:
        config = config_from_dict(method, config, reward_model=reward)
    if method not in METHODS_NEEDING_REWARD and (reward_model_path is not None or reward_fn is not None):
        raise ValueError(f"reward_model: method {method!r} does not use a reward model")

    module_name, function_name = _ENTRY_POINTS[method]
    entry = getattr(importlib.import_module(module_name), function_name)
    if method in METHODS_NEEDING_REWARD:
        return entry(
            data_path,
            base_model_path,
            out_dir,
            config,
            control,
            reward_model_path=reward_model_path,
            reward_fn=reward_fn,
        )
    return entry(data_path, base_model_path, out_dir, config, control)
