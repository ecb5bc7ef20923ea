"""The safety screen every generated response passes before a person sees it.

Two signals, combined by the site's per-project policy:

* **Rules**: regular expressions (a shipped default list plus the project's own). The first rule
  that matches names the reason. Cheap, so the playground also applies them to partial text while
  it streams.
* **Classifier score**: a reward model (e.g. one trained on harmlessness pairs such as
  Anthropic's hh-rlhf "harmless-base") scores (conversation, response); a score below the
  project's threshold flags the response. Scoring needs torch, so it runs in the worker that
  generated the text, never in the web process.

This module imports neither torch nor transformers at import time: the web process uses
`compile_rules` / `match_rule` to validate rule lists and to screen text it already has.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Message = dict[str, str]
Conversation = list[Message]

MAX_RULES = 200
MAX_PATTERN_CHARS = 500

# Shipped defaults: coarse and deliberately conservative (false positives go to the project's
# policy, which may be "blur with warning" rather than "hide"). Case-insensitive.
DEFAULT_RULES: tuple[dict[str, str], ...] = (
    {
        "name": "weapons-explosives",
        "pattern": r"\b(how to (make|build|assemble)|recipe for|instructions for)\b.{0,40}\b(bomb|explosive|pipe ?bomb|napalm|nerve agent|sarin|ricin)\b",
    },
    {"name": "self-harm-encouragement", "pattern": r"\b(you should|go) (kill|hurt) yourself\b|\bkys\b"},
    {"name": "self-harm-method", "pattern": r"\b(best|easiest|painless) way to (kill myself|commit suicide|end my life)\b"},
    {"name": "credit-card-number", "pattern": r"\b(?:\d[ -]?){13,16}\b"},
    {"name": "us-ssn", "pattern": r"\b\d{3}-\d{2}-\d{4}\b"},
    {"name": "malware", "pattern": r"\b(write|create|build)\b.{0,30}\b(ransomware|keylogger|botnet)\b"},
    {"name": "violent-threat", "pattern": r"\bi (will|am going to) (kill|murder|shoot|stab) you\b"},
)


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]


def compile_rules(rules: Iterable[Mapping[str, Any]]) -> list[Rule]:
    """Validate and compile `[{"name": ..., "pattern": ...}, ...]`; ValueError names the bad rule."""
    compiled: list[Rule] = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, Mapping):
            raise ValueError(f"rules[{index}] must be an object with 'name' and 'pattern'")
        name, pattern = rule.get("name"), rule.get("pattern")
        if not isinstance(pattern, str) or not pattern.strip():
            raise ValueError(f"rules[{index}]: 'pattern' must be a non-empty string")
        if len(pattern) > MAX_PATTERN_CHARS:
            raise ValueError(f"rules[{index}]: 'pattern' is longer than {MAX_PATTERN_CHARS} characters")
        if name is None or name == "":
            name = f"rule-{index + 1}"
        if not isinstance(name, str) or len(name) > 100:
            raise ValueError(f"rules[{index}]: 'name' must be a string of at most 100 characters")
        try:
            compiled.append(Rule(name=name, pattern=re.compile(pattern, re.IGNORECASE | re.DOTALL)))
        except re.error as error:
            raise ValueError(f"rules[{index}] ({name}): invalid regular expression: {error}") from None
        if len(compiled) > MAX_RULES:
            raise ValueError(f"at most {MAX_RULES} rules per project")
    return compiled


def match_rule(text: str, rules: Sequence[Rule]) -> str | None:
    """Name of the first rule whose pattern occurs in `text`, else None."""
    for rule in rules:
        if rule.pattern.search(text):
            return rule.name
    return None


class SafetyClassifier:
    """A reward model used as a harmlessness classifier: higher score = safer.

    Wraps `rlhf.training.reward.RewardModelScorer` (full or LoRA reward artifacts) and scores the
    conversation with the response appended as the assistant turn.
    """

    def __init__(self, scorer: Any) -> None:
        self._scorer = scorer

    @classmethod
    def load(cls, model_dir: Path | str, max_length: int = 1024) -> SafetyClassifier:
        from rlhf.scoring import RewardModelScorer

        return cls(RewardModelScorer.load(Path(model_dir), max_length=max_length))

    def score(self, conversations: Sequence[Conversation], responses: Sequence[str]) -> list[float]:
        if len(conversations) != len(responses):
            raise ValueError("one conversation per response is needed")
        full = [list(conv) + [{"role": "assistant", "content": text}] for conv, text in zip(conversations, responses)]
        return [float(value) for value in self._scorer.score(full)]


_CLASSIFIERS: dict[str, SafetyClassifier] = {}


def classifier_for(model_dir: Path | str) -> SafetyClassifier:
    """A process-wide cache: a worker loads each classifier once."""
    key = str(Path(model_dir).absolute())
    if key not in _CLASSIFIERS:
        if len(_CLASSIFIERS) >= 2:
            _CLASSIFIERS.pop(next(iter(_CLASSIFIERS)))
        _CLASSIFIERS[key] = SafetyClassifier.load(model_dir)
    return _CLASSIFIERS[key]
