"""Toy data, a known reward and policy probes shared by the rlhf training tests."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch

from rlhf.models import load_causal_lm, load_tokenizer

TOPICS = ["cats", "rain", "tea", "maps", "boats", "owls", "bread", "kites"]
NICE_WORDS = ["good", "nice", "kind", "calm", "happy", "clear", "bright", "warm"]

# Byte-level tiny tokenizer (rlhf.models.make_byte_tokenizer): id 3 + b is byte b, ids 0-2 are specials.
ASCII_IDS = range(3, 3 + 128)


def write_toy_preferences(path: Path, count: int = 120, seed: int = 0) -> Path:
    """Pairs whose answer is known: chosen = lowercase words, rejected = numbers."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(count):
            prompt = [{"role": "user", "content": f"Tell me about {rng.choice(TOPICS)}."}]
            chosen = " ".join(rng.choice(NICE_WORDS) for _ in range(rng.randint(2, 5)))
            rejected = " ".join(str(rng.randint(0, 999)) for _ in range(rng.randint(2, 5)))
            row = {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }
            handle.write(json.dumps(row) + "\n")
    return path


def ascii_reward(prompts: list[Any], completions: list[Any], completion_ids: list[list[int]], **kwargs: Any) -> list[float]:
    """Known reward: the fraction of answer tokens that are ASCII bytes (about 0.55 for the random policy).

    Token-level so every sampled token carries signal, which lets a tiny random policy learn it
    within a dozen steps; it uses TRL's reward-function convention, so PPO, RLOO and GRPO share it.
    """
    return [sum(token in ASCII_IDS for token in ids) / max(len(ids), 1) for ids in completion_ids]


def prompts_of(path: Path) -> list[list[dict[str, str]]]:
    seen, prompts = set(), []
    for line in path.read_text().splitlines():
        prompt = json.loads(line)["prompt"]
        key = json.dumps(prompt)
        if key not in seen:
            seen.add(key)
            prompts.append(prompt)
    return prompts


@torch.no_grad()
def probe_policy(
    model_dir: Path, base_dir: Path, prompts: list[Any], *, samples: int = 16, max_new_tokens: int = 6, seed: int = 123
) -> dict[str, float]:
    """Sample from `model_dir`; return the mean ascii_reward and the KL to `base_dir` (nats per answer).

    The KL is the Monte-Carlo estimate E_{y~π}[log π(y|x) - log π_base(y|x)] over the answers'
    tokens, an independent check of how far training moved the policy.
    """
    tokenizer = load_tokenizer(model_dir)
    tokenizer.padding_side = "left"
    policy, base = load_causal_lm(model_dir).eval(), load_causal_lm(base_dir).eval()
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(seed)
    out = policy.generate(
        **batch,
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        max_new_tokens=max_new_tokens,
        num_return_sequences=samples,
        pad_token_id=tokenizer.pad_token_id,
    )
    context = batch["input_ids"].shape[1]
    responses = out[:, context:]
    eos = tokenizer.eos_token_id
    is_eos = responses == eos
    first = torch.where(is_eos.any(1), is_eos.int().argmax(1), torch.full((len(responses),), responses.shape[1]))
    valid = torch.arange(responses.shape[1]).unsqueeze(0) < first.unsqueeze(1)
    ids = [row[mask].tolist() for row, mask in zip(responses, valid, strict=True)]
    reward = sum(ascii_reward([], [], ids)) / len(ids)

    attention = torch.cat([batch["attention_mask"].repeat_interleave(samples, 0), torch.ones_like(responses)], 1)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)

    def logprobs(model: Any) -> torch.Tensor:
        logits = model(input_ids=out, attention_mask=attention, position_ids=positions).logits[:, context - 1 : -1]
        return torch.log_softmax(logits.float(), -1).gather(-1, responses.unsqueeze(-1)).squeeze(-1)

    kl = ((logprobs(policy) - logprobs(base)) * valid).sum(1).mean().item()
    return {"reward": reward, "kl": kl}


def record_shared_prefix_calls(monkeypatch, layout_name: str) -> list[bool]:
    """For each call of `rlhf.training.shared_prefix.<layout_name>` from now on, whether it found a
    batch to share prompts in (True) or let the model's own forward run (False)."""
    import rlhf.training.shared_prefix as shared_prefix

    calls: list[bool] = []
    layout = getattr(shared_prefix, layout_name)

    def recorded(*args):
        found = layout(*args)
        calls.append(found is not None)
        return found

    monkeypatch.setattr(shared_prefix, layout_name, recorded)
    return calls


def train_with_and_without_shared_prefix(monkeypatch, method, layout_name, data, base, out, config):
    """Train `method` twice from the same start, shared prefix on (default) then off.

    Returns (shared result, its layout calls, plain result, its layout calls): see
    `record_shared_prefix_calls`.
    """
    from rlhf.training import train

    calls = record_shared_prefix_calls(monkeypatch, layout_name)
    shared = train(method, data, base, out / "shared", config)
    shared_calls = list(calls)
    calls.clear()
    plain = train(method, data, base, out / "plain", {**config, "shared_prefix": False})
    return shared, shared_calls, plain, list(calls)
