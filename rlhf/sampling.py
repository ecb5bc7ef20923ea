"""The one token sampler: temperature, top-k and top-p (nucleus) filtering, then an inverse-CDF pick.

Batch generation (`rlhf.generation`) and the streaming chat (`rlhf.chat`) both sample through
here, so a version answers with the same distribution in the playground as in a generation run.
The filtering follows Hugging Face's order: temperature, then top-k, then top-p over the
renormalised top-k. Top-p keeps the smallest set of most likely tokens whose mass reaches
`top_p`: a token is dropped when the tokens ranked above it already hold `top_p` of the mass,
so the most likely token always survives.

The random number is the caller's: generation takes it from a counter-based hash of (seed,
conversation, sample, position), so a row's answer does not depend on which batch it ran in;
chat takes it from a seeded torch generator.

torch is imported inside the functions: the web process imports `rlhf` without torch.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

# Top-p alone starts from this many top tokens and widens only when they hold less than top_p.
_NUCLEUS_START_WIDTH = 256


def candidates(logits: torch.Tensor, *, top_k: int, top_p: float) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Token ids in rank order (None = the whole vocabulary in id order) and their probabilities,
    for rows of already temperature-scaled logits, top-k and top-p applied (dropped tokens get 0).

    A full sort of a 50k vocabulary per step costs more than the model's forward pass on a CPU,
    so it is avoided: top-k needs only `topk`; plain sampling needs no order at all (inverse-CDF
    sampling works in any fixed order); top-p alone takes the top 256 tokens and widens only when
    they do not yet hold `top_p` of the mass, because only then can the nucleus reach beyond them.
    """
    import torch

    vocab = logits.shape[-1]
    if 0 < top_k < vocab:
        values, ids = torch.topk(logits, top_k, dim=-1, sorted=True)
        return ids, nucleus(torch.softmax(values, dim=-1), top_p)  # HF order: top-p sees the renormalised top-k
    if top_p >= 1.0:
        return None, torch.softmax(logits, dim=-1)
    log_total = torch.logsumexp(logits, dim=-1, keepdim=True)
    width = min(vocab, _NUCLEUS_START_WIDTH)
    while True:
        values, ids = torch.topk(logits, width, dim=-1, sorted=True)
        probs = torch.exp(values - log_total)  # shares of the full distribution
        if width == vocab or bool((probs.sum(dim=-1) >= top_p).all()):
            return ids, nucleus(probs, top_p)
        width = min(vocab, width * 4)


def nucleus(ranked_probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero the tokens outside the nucleus of probabilities sorted in descending order."""
    import torch

    if top_p >= 1.0:
        return ranked_probs
    mass_before = torch.cumsum(ranked_probs, dim=-1) - ranked_probs
    return ranked_probs.masked_fill(mass_before >= top_p, 0.0)


def pick(ranked_ids: torch.Tensor | None, probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling: for each row, the token where the cumulative mass passes u * total.

    `uniforms` holds one number in [0, 1) per row; returns token ids of shape (rows, 1).
    """
    import torch

    cumulative = torch.cumsum(probs, dim=-1)
    target = (uniforms.to(cumulative.dtype) * cumulative[:, -1]).unsqueeze(-1)
    position = torch.searchsorted(cumulative, target, right=True).clamp_(max=probs.shape[-1] - 1)
    # Rounding at the very end of the CDF could land on a token without mass (filtered out or
    # underflowed); step back to the last one that has some.
    last_with_mass = probs.shape[-1] - 1 - torch.argmax((probs.flip(-1) > 0).to(torch.uint8), dim=-1, keepdim=True)
    position = torch.minimum(position, last_with_mass)
    return position if ranked_ids is None else ranked_ids.gather(-1, position)


def sample(logits: torch.Tensor, uniforms: torch.Tensor, *, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Token ids (rows, 1) sampled from rows of raw logits; temperature 0 is greedy."""
    import torch

    if temperature == 0:
        return torch.argmax(logits, dim=-1, keepdim=True)
    ranked_ids, probs = candidates(logits.float() / temperature, top_k=top_k, top_p=top_p)
    return pick(ranked_ids, probs, uniforms.to(probs.device))


def counter_uniforms(seed: int, rows: Sequence[tuple[int, int]], step: int) -> list[float]:
    """One uniform in [0, 1) per (conversation id, sample) row at new-token position `step`,
    from a hash of (seed, conversation, sample, step): reproducible whatever the batching."""
    values = []
    for conversation_id, sample_index in rows:
        key = struct.pack("<qqqq", seed, conversation_id, sample_index, step)
        word = int.from_bytes(hashlib.blake2b(key, digest_size=8, person=b"rlhf-sample").digest(), "little")
        values.append((word >> 11) / float(1 << 53))  # 53 random bits
    return values
