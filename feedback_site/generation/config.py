"""How a generation run turns K answers per prompt into pairs to judge (sampling is `rlhf`'s)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from rlhf.config import Config, check, option


@dataclass
class PairingConfig(Config):
    """K answers per prompt become pairs (all C(K, 2) of them, or a sample of N per prompt), or one
    ranking task of all K answers (K = 3–9; the ranking page, expanded to pairs in snapshots)."""

    kind: ClassVar[str] = "pairing"

    k: int = option(2, min=2, max=16, help="Answers sampled per prompt.")
    pairing: Literal["all", "sample", "ranking"] = option(
        "all", help='"all" pairs among the K answers, a "sample" of pairs_per_prompt, or one "ranking" task of the K answers (K = 3–9).'
    )
    pairs_per_prompt: int | None = option(None, min=1, help="Only for sampled pairing: pairs per prompt, at most K·(K−1)/2.")
    rate_answers: bool = option(
        False, help="Also queue every answer on its own for thumbs up / down (the rating page), the feedback KTO learns from."
    )

    def check(self) -> None:
        if self.pairing == "sample":
            check(self.pairs_per_prompt is not None, "pairs_per_prompt", "say how many pairs to sample per prompt")
            most = self.k * (self.k - 1) // 2
            check(self.pairs_per_prompt <= most, "pairs_per_prompt", f"must be between 1 and {most} (K·(K−1)/2 for K={self.k})")
        else:
            self.pairs_per_prompt = None
        if self.pairing == "ranking":
            check(3 <= self.k <= 9, "k", "a ranking task shows 3 to 9 answers: K must be between 3 and 9")
