"""The one sampler (rlhf.sampling) that batch generation and the streaming chat share."""

from __future__ import annotations

import pytest
import torch

from rlhf import sampling


def _reference(logits: torch.Tensor, u: float, temperature: float, top_k: int, top_p: float) -> int:
    """Full sort, HF's order (temperature, top-k, top-p over the renormalised top-k), inverse CDF."""
    probs = torch.softmax(logits / temperature, dim=-1)
    if not top_k and top_p >= 1.0:  # plain sampling needs no ranking: the CDF runs in id order
        return int(torch.searchsorted(torch.cumsum(probs, dim=-1), torch.tensor([u]), right=True).clamp(max=len(probs) - 1))
    probs, order = torch.sort(probs, descending=True)
    if top_k:
        probs, order = torch.softmax(torch.log(probs[:top_k]), dim=-1), order[:top_k]
    keep = (torch.cumsum(probs, dim=-1) - probs) < top_p
    probs = probs * keep
    cumulative = torch.cumsum(probs, dim=-1)
    position = int(torch.searchsorted(cumulative, torch.tensor([u * float(cumulative[-1])]), right=True))
    return int(order[min(position, int(keep.sum()) - 1)])


def test_top_p_keeps_the_smallest_prefix_that_reaches_it() -> None:
    ranked = torch.tensor([[0.5, 0.25, 0.25]])  # exact in binary, so the boundary is exact
    # 0.5 + 0.25 reaches 0.75 exactly: the third token is outside the nucleus (the boundary is
    # the same in generation and chat; they used to disagree on it).
    assert sampling.nucleus(ranked, 0.75).tolist() == [[0.5, 0.25, 0.0]]
    assert sampling.nucleus(ranked, 0.76).tolist() == [[0.5, 0.25, 0.25]]
    assert sampling.nucleus(ranked, 0.1).tolist() == [[0.5, 0.0, 0.0]]  # the top token always survives


@pytest.mark.parametrize(("top_k", "top_p"), [(0, 1.0), (3, 1.0), (0, 0.7), (4, 0.6), (0, 0.05)])
def test_sample_matches_a_full_sort_reference(top_k: int, top_p: float) -> None:
    generator = torch.Generator().manual_seed(7)
    logits = torch.randn(12, 40, generator=generator)
    uniforms = torch.rand(12, generator=generator, dtype=torch.float64)
    chosen = sampling.sample(logits, uniforms, temperature=0.8, top_k=top_k, top_p=top_p)
    assert chosen.shape == (12, 1)
    for row in range(12):
        assert int(chosen[row]) == _reference(logits[row], float(uniforms[row]), 0.8, top_k, top_p)


def test_temperature_zero_is_greedy_whatever_the_uniform() -> None:
    logits = torch.tensor([[0.1, 3.0, 2.9], [5.0, 0.0, 0.0]])
    for u in (0.0, 0.5, 0.999):
        chosen = sampling.sample(logits, torch.full((2,), u, dtype=torch.float64), temperature=0, top_k=0, top_p=0.5)
        assert chosen.flatten().tolist() == [1, 0]


def test_counter_uniforms_depend_on_the_row_not_on_the_batch() -> None:
    alone = sampling.counter_uniforms(3, [(5, 1)], step=4)
    batched = sampling.counter_uniforms(3, [(0, 0), (5, 1), (9, 2)], step=4)
    assert batched[1] == alone[0]
    assert len(set(batched)) == 3 and all(0.0 <= value < 1.0 for value in batched)
    assert sampling.counter_uniforms(4, [(5, 1)], step=4) != alone  # another seed, another stream


def test_generation_and_chat_sample_through_this_module() -> None:
    import inspect

    from rlhf import chat, generation

    # One implementation: neither module keeps a filter of its own.
    for module in (chat, generation):
        source = inspect.getsource(module)
        assert "sampling.sample(" in source
        assert "cumsum" not in source
