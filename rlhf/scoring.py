"""Scoring with a reward model: conversations, preference pairs, and a reward function for RL.

One scorer (`RewardModelScorer`) serves every caller: training's held-out metrics, PPO / RLOO /
GRPO rewards, evaluation, safety screening, the simulated annotator and the uncertainty-first
queue (`score_pairs`: pairs whose two responses score closest teach the most, so they go first).
Conversations are formatted with the reward model's chat template exactly as in training.

torch and transformers are imported inside the functions, as everywhere in `rlhf`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlhf.models import load_sequence_classifier, load_tokenizer
from rlhf.types import Conversation

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


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
    if not pairs:
        return []
    scorer = RewardModelScorer.load(model_dir, device=device, batch_size=batch_size, max_length=max_length)
    conversations: list[Conversation] = []
    for messages, a, b in pairs:
        conversations.append([*messages, {"role": "assistant", "content": a}])
        conversations.append([*messages, {"role": "assistant", "content": b}])
    rewards = scorer.score(conversations)
    return [(float(rewards[2 * i]), float(rewards[2 * i + 1])) for i in range(len(pairs))]


class RewardModelScorer:
    """Scores conversations with a reward model; also a reward function in TRL's convention.

    `scorer.score([conversation, ...])` returns one float per conversation. Calling the scorer as
    `scorer(prompts=..., completions=...)` scores `prompt + completion`, which is how PPO, RLOO,
    GRPO and evaluation use it. Conversations are formatted with the tokenizer's chat template
    exactly as in training; longer ones keep their last `max_length` tokens, because the reward
    is read at the final token and the answer is at the end.
    """

    __name__ = "reward_model"  # TRL names reward functions by __name__ in its logs

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        batch_size: int = 16,
        max_length: int | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        # Sequence classifiers find the last real token through config.pad_token_id.
        model.config.pad_token_id = tokenizer.pad_token_id

    @classmethod
    def load(
        cls,
        model_dir: Path | str,
        *,
        device: torch.device | str | None = None,
        batch_size: int = 16,
        max_length: int | None = None,
    ) -> RewardModelScorer:
        """Load a reward artifact (full weights or LoRA adapter) for inference on `device` (default: best)."""
        import torch

        from rlhf.models import pick_device

        model_dir = Path(model_dir)
        tokenizer = load_tokenizer(model_dir)
        model = load_sequence_classifier(model_dir)
        if device is None:
            device, dtype = pick_device()
            model.to(device=device, dtype=dtype)
        else:
            model.to(torch.device(device))
        model.eval()
        return cls(model, tokenizer, batch_size=batch_size, max_length=max_length)

    def score(self, conversations: Sequence[Conversation]) -> list[float]:
        import torch

        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        pad_id = self.tokenizer.pad_token_id
        scores: list[float] = []
        try:
            for start in range(0, len(conversations), self.batch_size):
                batch = conversations[start : start + self.batch_size]
                ids = [self._encode(conversation) for conversation in batch]
                width = max(len(row) for row in ids)
                input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
                attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
                for row, tokens in enumerate(ids):
                    # Right padding, as in TRL's reward collator, so the last real token is found the same way.
                    input_ids[row, : len(tokens)] = torch.tensor(tokens)
                    attention_mask[row, : len(tokens)] = 1
                with torch.no_grad():
                    logits = self.model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False).logits
                scores.extend(float(value) for value in logits[:, 0].float().cpu())
        finally:
            self.model.train(was_training)
        return scores

    def _encode(self, conversation: Conversation) -> list[int]:
        return encode_conversation(self.tokenizer, conversation, self.max_length)

    def __call__(self, prompts: list[Conversation], completions: list[Any], **kwargs: Any) -> list[float]:
        conversations = []
        for prompt, completion in zip(prompts, completions, strict=True):
            if isinstance(completion, str):
                completion = [{"role": "assistant", "content": completion}]
            conversations.append(list(prompt) + list(completion))
        return self.score(conversations)


def encode_conversation(tokenizer: PreTrainedTokenizerBase, conversation: Conversation, max_length: int | None) -> list[int]:
    """Token ids of a whole conversation through the chat template (as TRL's reward trainer does),
    keeping the last `max_length` tokens: the reward is read at the final token."""
    ids = list(tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"])
    return ids[-max_length:] if max_length is not None and len(ids) > max_length else ids


def score(model_dir: Path | str, conversations: Sequence[Conversation]) -> list[float]:
    """Reward of each conversation (prompt messages + assistant answer) under the reward model in `model_dir`.

    Loads the model on every call; code that scores repeatedly should keep a `RewardModelScorer`.
    """
    return RewardModelScorer.load(model_dir).score(conversations)


def evaluate_pairs(scorer: RewardModelScorer, records: Sequence[dict[str, Conversation]], tie_tolerance: float = 0.0) -> dict[str, float]:
    """Strict accuracy (ties are wrong), mean margin and tie fraction of a reward model on preference pairs."""
    chosen = scorer.score([record["prompt"] + record["chosen"] for record in records])
    rejected = scorer.score([record["prompt"] + record["rejected"] for record in records])
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    count = len(margins)
    ties = sum(1 for margin in margins if abs(margin) <= tie_tolerance)
    wins = sum(1 for margin in margins if margin > tie_tolerance)
    return {
        "accuracy": wins / count,
        "margin": sum(margins) / count,
        "tie_fraction": ties / count,
    }
