"""The reward of an online RL run (PPO, RLOO, GRPO): a reward-model artifact or a callable, and prompt filtering by length."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rlhf.progress import RunControl

if TYPE_CHECKING:  # pragma: no cover - typing only
    from transformers import PreTrainedTokenizerBase


from rlhf.models import read_manifest
from rlhf.training.devices import DeviceChoice
from rlhf.types import Conversation


class RewardFn(Protocol):
    """A reward function in TRL's calling convention, so one callable serves PPO, RLOO and GRPO.

    `prompts` are conversations (lists of messages), `completions` are one-message lists
    `[{"role": "assistant", "content": text}]`; extra keyword arguments (e.g. `completion_ids`,
    `trainer_state`) may be passed and must be accepted. Returns one float per completion.
    """

    def __call__(self, prompts: list[Conversation], completions: list[Conversation], **kwargs: Any) -> list[float]: ...


def callable_name(function: Any) -> str:
    return getattr(function, "__qualname__", None) or getattr(function, "__name__", None) or type(function).__name__


def reward_identity(method: str, reward_model_path: Path | str | None, reward_fn: RewardFn | None) -> dict[str, Any]:
    """Check that an RL method got exactly one reward, and describe it for run.json and the manifest."""
    if (reward_model_path is None) == (reward_fn is None):
        raise ValueError(f"{method} needs exactly one reward: a reward model (reward_model_path) or a reward_fn")
    if reward_fn is not None:
        if not callable(reward_fn):
            raise TypeError("reward_fn must be callable as f(prompts=..., completions=..., **kwargs) -> list[float]")
        return {"reward_model": None, "reward_fn": callable_name(reward_fn)}
    path = Path(reward_model_path)  # type: ignore[arg-type]
    if not path.is_dir():
        raise FileNotFoundError(f"reward model folder {str(path)!r} does not exist")
    manifest = read_manifest(path)
    if manifest is not None and manifest.get("model_kind") not in (None, "reward"):
        raise ValueError(f"{path} is a {manifest.get('model_kind')} model, not a reward model")
    return {"reward_model": str(path), "reward_fn": None}


def load_reward(reward_model_path: Path | str | None, reward_fn: RewardFn | None, device: DeviceChoice, max_length: int) -> RewardFn:
    """The reward function of an RL run: the callable itself, or a scorer over the reward-model artifact."""
    if reward_fn is not None:
        return reward_fn
    from rlhf.scoring import RewardModelScorer

    assert reward_model_path is not None
    return RewardModelScorer.load(reward_model_path, device=device.device, max_length=max_length)


def prompt_token_lengths(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Conversation]) -> list[int]:
    """Token counts of the prompts as the policy sees them (chat template + generation prompt)."""
    lengths = []
    for prompt in prompts:
        encoded = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True, return_dict=True)
        lengths.append(len(encoded["input_ids"]))
    return lengths


def filter_prompts_by_length(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Conversation],
    max_prompt_tokens: int,
    control: RunControl,
) -> list[Conversation]:
    """Keep prompts that leave room for the answer; say how many were dropped (silently dropping hides data loss)."""
    lengths = prompt_token_lengths(tokenizer, prompts)
    kept = [prompt for prompt, length in zip(prompts, lengths, strict=True) if length <= max_prompt_tokens]
    dropped = len(prompts) - len(kept)
    if dropped:
        control.log(f"dropped {dropped} of {len(prompts)} prompts longer than {max_prompt_tokens} tokens")
    if not kept:
        raise ValueError(
            f"every prompt is longer than {max_prompt_tokens} tokens (max_length - max_completion_length); "
            "raise max_length or lower max_completion_length"
        )
    return kept
