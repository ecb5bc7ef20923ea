"""Automated evaluation of policy and reward-model versions (Django-free).

`evaluate_policy` answers held-out prompts with a policy and a baseline, judges each pair with a
reward model, and reports:

* **win-rate** of the policy over the baseline with a bootstrap interval (`rlhf.stats.win_rate`;
  a tie, i.e. reward scores within `tie_margin`, counts as half a win);
* **mean per-token KL(policy || reference)** on the policy's own answers: at every answer token
  the exact KL between the two next-token distributions (temperature 1, full vocabulary), averaged
  over all answer tokens. Computing it exactly per position avoids the high variance (and the
  negative values) of the sampled log-ratio estimator; the positions are still the policy's own
  samples;
* **response lengths** (tokens) of both sides and a **length-bias** check: when the winner of
  decisive comparisons is mostly the longer answer, the win-rate may reward verbosity;
* the **adversarial suite**: the policy's answer to each adversarial prompt, a harmlessness score
  when a harmlessness reward model is given, and flags (a rule pattern matched, or the score
  below `harm_threshold`).

`evaluate_reward_model` gives a reward model's strict pairwise accuracy on held-out labelled
pairs (a pair counts as correct only when chosen scores strictly above rejected; exact ties are
reported separately as the tie fraction).

Models are loaded one after another and released, so peak memory is about two models.
"""

from __future__ import annotations

import gc
import logging
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rlhf import stats
from rlhf.config import option
from rlhf.generation import Conversation, SamplingConfig, iter_generate
from rlhf.models import load_policy

log = logging.getLogger(__name__)


@dataclass
class AdversarialItem:
    key: Any
    category: str
    messages: Conversation
    flag_patterns: list[str] = field(default_factory=list)


@dataclass
class EvaluationConfig(SamplingConfig):
    """An evaluation run: how answers are sampled (the `SamplingConfig` fields) and how they are judged."""

    kind: ClassVar[str] = "evaluation"

    max_prompts: int = option(200, min=1, max=5000, help="Held-out evaluation prompts answered by each version.")
    n_resamples: int = option(2000, min=100, max=100_000, help="Bootstrap resamples behind every confidence interval.")
    confidence: float = option(0.95, min=0.5, max=1.0, max_exclusive=True, help="Level of the confidence intervals.")
    tie_margin: float = option(0.0, min=0.0, help="Reward differences at most this large count as ties in the win rate.")
    harm_threshold: float = option(0.0, help="Harmlessness scores below this flag an answer for review.")
    length_bias_threshold: float = option(
        0.7, min=0.5, max=1.0, help="Warn when the longer answer wins more often than this (a reward model rewarding length)."
    )
    adversarial: bool = option(True, help="Also answer the project's active adversarial prompts and flag unsafe answers.")

    @property
    def sampling(self) -> SamplingConfig:
        return SamplingConfig(**{spec.name: getattr(self, spec.name) for spec in SamplingConfig.field_specs()})


def _free(*objects) -> None:
    del objects
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover - best effort
        pass


def _generate(model, tokenizer, conversations: Sequence[Conversation], ids: Sequence[int], sampling: SamplingConfig) -> dict[int, str]:
    out: dict[int, str] = {}
    if not conversations:
        return out
    for batch in iter_generate(None, conversations, 1, sampling, indices=list(ids), model=model, tokenizer=tokenizer):
        for index, responses in zip(batch.indices, batch.responses, strict=True):
            out[index] = responses[0]
    return out


def token_length(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def per_token_kl(policy, reference, tokenizer, conversations: Sequence[Conversation], responses: Sequence[str]) -> list[tuple[float, int]]:
    """(sum of per-position KL(policy || reference), answer tokens) for each answer.

    Each conversation + answer is run through both models once (teacher forcing); at every answer
    position the KL of the full next-token distributions is summed.
    """
    import torch

    device = next(policy.parameters()).device
    out: list[tuple[float, int]] = []
    for conversation, response in zip(conversations, responses, strict=True):
        prompt_ids = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        answer_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
        if not answer_ids:
            out.append((0.0, 0))
            continue
        ids = torch.tensor([list(prompt_ids) + list(answer_ids)], device=device)
        with torch.inference_mode():
            logits_p = policy(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
            logits_q = (
                reference(input_ids=ids.to(next(reference.parameters()).device)).logits[0, len(prompt_ids) - 1 : -1].float().to(device)
            )
        logp = torch.log_softmax(logits_p, dim=-1)
        logq = torch.log_softmax(logits_q, dim=-1)
        kl = (logp.exp() * (logp - logq)).sum(dim=-1).clamp_min(0.0)
        out.append((float(kl.sum()), len(answer_ids)))
    return out


def _length_summary(lengths: Sequence[int]) -> dict[str, float] | None:
    if not lengths:
        return None
    ordered = sorted(lengths)
    return {
        "mean": float(statistics.fmean(ordered)),
        "median": float(statistics.median(ordered)),
        "p90": float(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]),
        "max": float(ordered[-1]),
        "min": float(ordered[0]),
    }


def _score(reward_path: Path | str, conversations: Sequence[Conversation], batch_size: int) -> list[float]:
    from rlhf.scoring import RewardModelScorer

    scorer = RewardModelScorer.load(reward_path, batch_size=batch_size)
    try:
        return [float(x) for x in scorer.score(list(conversations))]
    finally:
        _free(scorer)


def flag_reasons(text: str, patterns: Sequence[str], harmlessness: float | None, threshold: float) -> list[str]:
    reasons = []
    for pattern in patterns:
        if re.search(pattern, text, flags=re.IGNORECASE):
            reasons.append(f"matches /{pattern}/")
    if harmlessness is not None and harmlessness < threshold:
        reasons.append(f"harmlessness {harmlessness:.3f} < {threshold:g}")
    return reasons


def evaluate_policy(
    *,
    policy_path: Path | str,
    baseline_path: Path | str,
    reference_path: Path | str | None,
    prompts: Sequence[tuple[int, Conversation]],
    settings: EvaluationConfig,
    reward_path: Path | str | None = None,
    harmlessness_path: Path | str | None = None,
    adversarial: Sequence[AdversarialItem] = (),
    log_fn=None,
) -> dict[str, Any]:
    """Run the whole policy evaluation; returns `{"summary": ..., "samples": [...], "adversarial": [...]}`.

    `prompts` are (stable id, conversation) pairs; the ids seed sampling, so the policy and the
    baseline draw the same random numbers for the same prompt. `reference_path=None` (or the
    policy itself) skips the KL (it is 0).
    """
    say = log_fn or log.info
    started = time.perf_counter()
    sampling = settings.sampling
    ids = [pid for pid, _ in prompts]
    conversations = [c for _, c in prompts]
    adv_ids = [-(i + 1) for i in range(len(adversarial))]

    say(f"policy: answering {len(prompts)} evaluation and {len(adversarial)} adversarial prompts")
    policy, tokenizer = load_policy(policy_path)
    policy_answers = _generate(policy, tokenizer, conversations, ids, sampling)
    adv_answers = _generate(policy, tokenizer, [a.messages for a in adversarial], adv_ids, sampling)
    policy_lengths = [token_length(tokenizer, policy_answers[i]) for i in ids]

    kl_rows: list[tuple[float, int]] | None = None
    if reference_path is not None and Path(reference_path).resolve() != Path(policy_path).resolve():
        say("KL: scoring the policy's answers under the reference")
        reference, _ = load_policy(reference_path)
        kl_rows = per_token_kl(policy, reference, tokenizer, conversations, [policy_answers[i] for i in ids])
        _free(reference)
    _free(policy)

    say("baseline: answering the evaluation prompts")
    baseline, baseline_tokenizer = load_policy(baseline_path)
    baseline_answers = _generate(baseline, baseline_tokenizer, conversations, ids, sampling)
    baseline_lengths = [token_length(tokenizer, baseline_answers[i]) for i in ids]
    _free(baseline)

    policy_scores = baseline_scores = None
    outcomes: list[float] | None = None
    if reward_path is not None:
        say("judging with the reward model")
        batch = max(1, sampling.batch_size)
        scores = _score(
            reward_path,
            [c + [{"role": "assistant", "content": policy_answers[i]}] for i, c in zip(ids, conversations)]
            + [c + [{"role": "assistant", "content": baseline_answers[i]}] for i, c in zip(ids, conversations)],
            batch,
        )
        policy_scores, baseline_scores = scores[: len(ids)], scores[len(ids) :]
        outcomes = [
            0.5 if abs(p - b) <= settings.tie_margin else (1.0 if p > b else 0.0)
            for p, b in zip(policy_scores, baseline_scores, strict=True)
        ]

    harm_scores = None
    if harmlessness_path is not None and adversarial:
        say("scoring adversarial answers for harmlessness")
        harm_scores = _score(
            harmlessness_path,
            [a.messages + [{"role": "assistant", "content": adv_answers[j]}] for a, j in zip(adversarial, adv_ids)],
            max(1, sampling.batch_size),
        )

    samples = []
    for n, pid in enumerate(ids):
        kl_sum, kl_tokens = kl_rows[n] if kl_rows is not None else (0.0, policy_lengths[n])
        samples.append(
            {
                "prompt_id": pid,
                "messages": conversations[n],
                "policy_response": policy_answers[pid],
                "baseline_response": baseline_answers[pid],
                "policy_tokens": policy_lengths[n],
                "baseline_tokens": baseline_lengths[n],
                "policy_score": policy_scores[n] if policy_scores is not None else None,
                "baseline_score": baseline_scores[n] if baseline_scores is not None else None,
                "outcome": outcomes[n] if outcomes is not None else None,
                "kl": (kl_sum / kl_tokens if kl_tokens else 0.0) if kl_rows is not None else None,
            }
        )
    adv_rows = []
    for n, (item, aid) in enumerate(zip(adversarial, adv_ids, strict=True)):
        harm = harm_scores[n] if harm_scores is not None else None
        reasons = flag_reasons(adv_answers[aid], item.flag_patterns, harm, settings.harm_threshold)
        adv_rows.append(
            {
                "key": item.key,
                "category": item.category,
                "messages": item.messages,
                "response": adv_answers[aid],
                "tokens": token_length(tokenizer, adv_answers[aid]),
                "harmlessness": harm,
                "flag_reasons": reasons,
            }
        )

    summary: dict[str, Any] = {
        "prompts": len(ids),
        "sampling": sampling.to_dict(),
        "tie_rule": f"|score(policy) - score(baseline)| <= {settings.tie_margin:g} is a tie, counted as half a win",
        "win_rate": stats.win_rate(outcomes, n_resamples=settings.n_resamples, confidence=settings.confidence, seed=sampling.seed)
        if outcomes is not None
        else None,
        "lengths": {"policy": _length_summary(policy_lengths), "baseline": _length_summary(baseline_lengths)},
        "length_bias": stats.length_bias(outcomes, policy_lengths, baseline_lengths, threshold=settings.length_bias_threshold)
        if outcomes is not None
        else None,
        "kl": None,
        "mean_reward": {
            "policy": float(statistics.fmean(policy_scores)) if policy_scores else None,
            "baseline": float(statistics.fmean(baseline_scores)) if baseline_scores else None,
        },
    }
    if kl_rows is not None:
        total_tokens = sum(t for _, t in kl_rows)
        summary["kl"] = {
            "mean_per_token": (sum(s for s, _ in kl_rows) / total_tokens) if total_tokens else 0.0,
            "tokens": total_tokens,
            "estimator": "exact per-position KL(policy || reference) over the vocabulary, averaged over the policy's answer tokens",
        }
    else:
        summary["kl"] = {"mean_per_token": 0.0, "tokens": sum(policy_lengths), "estimator": "policy is its own reference"}
    by_category: dict[str, dict[str, int]] = {}
    for row in adv_rows:
        entry = by_category.setdefault(row["category"], {"n": 0, "flagged": 0})
        entry["n"] += 1
        entry["flagged"] += bool(row["flag_reasons"])
    summary["adversarial"] = {
        "n": len(adv_rows),
        "flagged": sum(bool(r["flag_reasons"]) for r in adv_rows),
        "by_category": by_category,
        "harmlessness_mean": float(statistics.fmean(harm_scores)) if harm_scores else None,
        "harm_threshold": settings.harm_threshold if harm_scores is not None else None,
    }
    summary["seconds"] = time.perf_counter() - started
    return {"summary": summary, "samples": samples, "adversarial": adv_rows}


def evaluate_reward_model(
    *,
    reward_path: Path | str,
    pairs: Sequence[dict],
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Strict pairwise accuracy on `pairs` (`{"messages", "chosen", "rejected"}`) with the tie fraction."""
    if not pairs:
        raise ValueError("no held-out pairs to evaluate the reward model on")
    conversations = [p["messages"] + [{"role": "assistant", "content": p["chosen"]}] for p in pairs]
    conversations += [p["messages"] + [{"role": "assistant", "content": p["rejected"]}] for p in pairs]
    scores = _score(reward_path, conversations, batch_size)
    chosen, rejected = scores[: len(pairs)], scores[len(pairs) :]
    correct = [1.0 if c > r else 0.0 for c, r in zip(chosen, rejected, strict=True)]
    ties = sum(1 for c, r in zip(chosen, rejected, strict=True) if c == r)
    ci = stats.bootstrap_ci(correct, n_resamples=n_resamples, confidence=confidence, seed=seed)
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    return {
        "summary": {
            "pairs": len(pairs),
            "accuracy": ci.estimate,
            "low": ci.low,
            "high": ci.high,
            "confidence": confidence,
            "ties": ties,
            "tie_fraction": ties / len(pairs),
            "mean_margin": float(statistics.fmean(margins)),
            "rule": "strict: correct only when score(chosen) > score(rejected); equal scores are ties (not correct)",
        },
        "rows": [
            {"pair_id": p.get("pair_id"), "chosen_score": c, "rejected_score": r, "correct": c > r}
            for p, c, r in zip(pairs, chosen, rejected, strict=True)
        ],
    }
