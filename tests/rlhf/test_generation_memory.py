"""Batch size sized by memory: the heuristic's arithmetic, and that a lowered batch size changes
how prompts are batched but not a single sampled token."""

from __future__ import annotations

import pytest

from rlhf import generation
from rlhf.generation import SamplingConfig, iter_generate, kv_cache_bytes_per_token, memory_batch_limit

CONVERSATIONS = [[{"role": "user", "content": f"Tell me about {word}."}] for word in ("cats", "the sea", "bread", "snow", "maps", "tea")]


def test_kv_cache_size_and_batch_limit_follow_the_documented_formula(tiny_policy) -> None:
    model, _ = tiny_policy
    config = model.config
    # 2 (K and V) x 2 layers x 2 KV heads x head dim 16 x 4 bytes (float32).
    assert kv_cache_bytes_per_token(model) == 2 * config.num_hidden_layers * config.num_key_value_heads * 16 * 4 == 512
    per_sequence = (512 * 100 + 4 * config.vocab_size) * generation.ACTIVATION_FACTOR
    assert memory_batch_limit(model, 100, available=int(per_sequence * 5)) == 5
    assert memory_batch_limit(model, 100, available=int(per_sequence * 5) - 1) == 4
    assert memory_batch_limit(model, 100, available=10) == 1  # never below one sequence
    assert generation.available_memory_bytes(next(model.parameters()).device) > 0


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_short_memory_lowers_the_batch_size_without_changing_the_text(tiny_policy, monkeypatch, temperature) -> None:
    model, tokenizer = tiny_policy
    sampling = SamplingConfig(temperature=temperature, max_new_tokens=10, batch_size=6, seed=5)

    def run():
        batches = list(iter_generate(None, CONVERSATIONS, 2, sampling, model=model, tokenizer=tokenizer))
        texts = {i: r for b in batches for i, r in zip(b.indices, b.responses)}
        return len(batches), texts

    roomy_batches, roomy = run()
    # Memory for about two sequences only: the same prompts now go through in more, smaller batches.
    longest = (
        max(len(tokenizer.apply_chat_template(c, add_generation_prompt=True, return_dict=True)["input_ids"]) for c in CONVERSATIONS) + 10
    )
    budget = int((kv_cache_bytes_per_token(model) * longest + 4 * model.config.vocab_size) * generation.ACTIVATION_FACTOR * 2)
    monkeypatch.setattr(generation, "available_memory_bytes", lambda device: budget)
    tight_batches, tight = run()
    assert tight_batches > roomy_batches
    assert tight == roomy
