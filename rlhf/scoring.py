"""Scoring both responses of preference pairs with a reward model (torch side).

Used by the uncertainty-first queue: pairs whose two responses the reward model scores closest
are the ones where a human judgment teaches the most, so they are served first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

Conversation = list[dict[str, str]]


def score_pairs(
    model_dir: Path | str,
    pairs: Sequence[tuple[Conversation, str, str]],
    *,
    batch_size: int = 16,
    max_length: int | None = 1024,
    device=None,
) -> list[tuple[float, float]]:
    """(prompt messages, response a, response b) -> (reward of a, reward of b), each scored as
    prompt + assistant answer with the reward model's own chat template."""
    from rlhf.training.reward import RewardModelScorer

    if not pairs:
        return []
    scorer = RewardModelScorer.load(model_dir, device=device, batch_size=batch_size, max_length=max_length)
    conversations: list[Conversation] = []
    for messages, a, b in pairs:
        conversations.append([*messages, {"role": "assistant", "content": a}])
        conversations.append([*messages, {"role": "assistant", "content": b}])
    rewards = scorer.score(conversations)
    return [(float(rewards[2 * i]), float(rewards[2 * i + 1])) for i in range(len(pairs))]
