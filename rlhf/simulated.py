"""Simulated annotators: documented preference rules with seeded label noise (Django-free).

AlpacaFarm-style simulated annotators let demos, tests and benchmarks close the RLHF loop without
people. A simulated annotator scores each of the two responses of a pair with a *rule*, prefers
the higher score, and then, with probability `noise`, reports the opposite of what the rule
says (label noise, as real annotators disagree with each other).

Rules (`RULES`), each a pure function of (prompt text, response text) -> score:

* ``ends_with_question``: 1 when the response, stripped of trailing whitespace and closing
  quotes/brackets, ends with "?" (the answer hands the turn back with a question to the user),
  else 0. The hidden preference of `benchmarks/closed_loop.py`.
* ``asks_question``: 1 when the response contains a question mark (it asks the user something,
  anywhere; robust to answers cut off at a token limit), else 0. The hidden preference of
  `benchmarks/closed_loop.py` by default.
* ``shorter``: minus the response length in characters (prefers the shorter answer).
* ``longer``: the response length in characters (prefers the longer answer).
* ``keyword``: how many times `keyword` occurs in the response, case-insensitively.

The site also offers a reward-model-driven annotator; there the score is a reward model's output
(computed by a worker with `rlhf.scoring.score_pairs`) and `judge_scores` applies the same noise.

Ties (equal scores) are answered by `tie_policy`: "random" picks a side by a seeded coin (the
annotator always gives a decisive label, as in AlpacaFarm), "tie" reports a tie.

Reproducibility: every random draw is a pure function of `(seed, key, purpose)` where `key`
identifies the pair (the site uses the pair id). The same annotator judging the same pair gives
the same label, whatever order pairs come in and however work is split between processes; the
number of flipped labels among N pairs is fixed by the seed (see `noise_draw`).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from rlhf.config import Config, check, option

A, B, TIE = "a", "b", "tie"


def _strip_end(text: str) -> str:
    return text.rstrip().rstrip("\"'”’)]*_`").rstrip()


def ends_with_question(prompt: str, response: str, keyword: str = "") -> float:
    return 1.0 if _strip_end(response).endswith("?") else 0.0


def asks_question(prompt: str, response: str, keyword: str = "") -> float:
    return 1.0 if "?" in response else 0.0


def shorter(prompt: str, response: str, keyword: str = "") -> float:
    return -float(len(response.strip()))


def longer(prompt: str, response: str, keyword: str = "") -> float:
    return float(len(response.strip()))


def keyword_count(prompt: str, response: str, keyword: str = "") -> float:
    return float(response.lower().count(keyword.lower())) if keyword else 0.0


RULES: dict[str, Callable[[str, str, str], float]] = {
    "ends_with_question": ends_with_question,
    "asks_question": asks_question,
    "shorter": shorter,
    "longer": longer,
    "keyword": keyword_count,
}

RULE_DESCRIPTIONS: dict[str, str] = {
    "ends_with_question": "prefers the answer that ends with a question to the user",
    "asks_question": "prefers the answer that asks the user a question",
    "shorter": "prefers the shorter answer",
    "longer": "prefers the longer answer",
    "keyword": "prefers the answer that uses the keyword more often",
    "reward_model": "prefers the answer a reward-model version scores higher",
}


def _unit(seed: int, key: Any, purpose: str) -> float:
    """A uniform number in [0, 1) that depends only on (seed, key, purpose)."""
    digest = hashlib.sha256(f"{seed}:{key}:{purpose}".encode()).digest()
    return struct.unpack(">Q", digest[:8])[0] / 2**64


@dataclass
class SimulatedAnnotator(Config):
    """A rule plus label noise."""

    kind: ClassVar[str] = "simulated_annotator"

    rule: Literal["ends_with_question", "asks_question", "shorter", "longer", "keyword", "reward_model"] = option(
        "ends_with_question", help='One of the rules above, or "reward_model" (scores come from outside: use `judge_scores`).'
    )
    noise: float = option(0.1, min=0.0, max=0.5, help="Probability that a decisive label is flipped.")
    seed: int = option(0, min=0, help="Root of every random draw.")
    keyword: str = option("", help='The word the "keyword" rule counts (required there, ignored elsewhere).')
    tie_policy: Literal["random", "tie"] = option(
        "random", help='When the two scores are equal: "random" (a seeded coin picks a side) or "tie" (report a tie).'
    )

    def check(self) -> None:
        check(self.rule != "keyword" or bool(self.keyword.strip()), "keyword", "the keyword rule needs a non-empty keyword")

    @property
    def description(self) -> str:
        text = RULE_DESCRIPTIONS[self.rule]
        if self.rule == "keyword":
            text += f" ({self.keyword!r})"
        return f"{text}; flips {self.noise:.0%} of its labels"

    def score(self, prompt: str, response: str) -> float:
        if self.rule == "reward_model":
            raise ValueError("a reward-model annotator has no rule to score with; pass the model's scores to judge_scores")
        return RULES[self.rule](prompt, response, self.keyword)

    def noise_draw(self, key: Any) -> float:
        """The uniform draw that decides whether pair `key`'s label is flipped (flipped when < noise)."""
        return _unit(self.seed, key, "noise")

    def rule_label(self, score_a: float, score_b: float, key: Any) -> str:
        """What the rule says, before noise: "a", "b", or for equal scores the tie policy's answer."""
        if score_a > score_b:
            return A
        if score_b > score_a:
            return B
        if self.tie_policy == "tie":
            return TIE
        return A if _unit(self.seed, key, "tie") < 0.5 else B

    def judge_scores(self, score_a: float, score_b: float, key: Any) -> str:
        """The reported label for a pair whose two responses scored `score_a` and `score_b`."""
        label = self.rule_label(score_a, score_b, key)
        if label != TIE and self.noise_draw(key) < self.noise:
            return B if label == A else A
        return label

    def judge(self, prompt: str, response_a: str, response_b: str, key: Any) -> str:
        """ "a", "b" or "tie" for one pair; `key` (e.g. the pair id) seeds its random draws."""
        return self.judge_scores(self.score(prompt, response_a), self.score(prompt, response_b), key)
