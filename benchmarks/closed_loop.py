"""Closed-loop benchmark: can one round of RLHF teach SmolLM2 a hidden preference from noisy labels?

What it does
    A simulated annotator (`rlhf.simulated.SimulatedAnnotator`) with a hidden preference and 10%
    label noise judges pairs of answers sampled from the base policy SmolLM2-135M-Instruct. The
    default preference is "asks_question": it prefers the answer that asks the user a question
    (contains "?"). `--rule ends_with_question` (the answer *ends* with a question) is available,
    but with a short token limit most base answers are cut off mid-sentence, so the base almost
    never ends with "?" (about 7% at 48 tokens in a probe) while about a third of its answers ask
    something: "asks_question" leaves the base room to express the preference (base vs base ~50%).
    When both answers of a pair ask a question, or neither does, the annotator answers "tie" (as a
    person could); ties count as judged pairs but, as in the site's snapshots, stay out of the
    chosen/rejected training data. Noise flips 10% of the decisive labels. Two independent rounds
    then start from the base on the same judged pairs (at most 512):

    * round "dpo": DPO (LoRA) on the judged pairs;
    * round "ppo": a reward model (LoRA) trained on the judged pairs, then PPO (LoRA) against it.

    After each round the new policy and the base answer held-out prompts (disjoint *topics* from
    the training prompts) with the same sampling settings; the hidden rule, without noise, judges
    each (new, base) answer pair: a win when only the new answer satisfies it (asks a question), a
    loss when only the base's does, a tie (half a win) otherwise. Reported: win-rate with a 95% percentile
    bootstrap interval (`rlhf.stats.win_rate`), the share of answers satisfying the rule, and the mean
    per-token KL(new || base) on the new policy's answers (`rlhf.evaluation.per_token_kl`, exact
    KL of the next-token distributions at each answer token).

    Targets (issue 4): win-rate >= 75% after the DPO round, >= 70% after the PPO round, each on
    <= 512 judged pairs, the whole run under 45 minutes on the 2-core CPU.

Why Django-free
    The benchmark drives `rlhf` directly (generate -> simulated labels -> rlhf.training dpo /
    reward / ppo -> generate -> score) instead of going through the site's queue, snapshot and
    Celery stages. That measures the ML loop itself, with none of the web machinery's overhead,
    and is much simpler to run. The site's round driver (feedback_site/loop) runs the same stages
    through real services and workers; tests/loop covers it on tiny models.

Prompts
    Requests for help with a personal plan ("I want to start a garden. Any suggestions?"), built
    from templates x activities. Such requests make a follow-up question natural, so the base
    policy sometimes ends with one (the script prints the base rate); train and held-out prompts
    use different activities.

Usage
    .venv/bin/python benchmarks/closed_loop.py --quick     # smoke run (a few minutes), tiny settings
    nice -n 10 .venv/bin/python benchmarks/closed_loop.py  # full run; JSON in benchmarks/results/closed_loop.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TEMPLATES = [
    "I want to {a}. Can you help me get started?",
    "I'm thinking about trying to {a}. Any suggestions?",
    "Give me some advice: I'd like to {a}.",
    "Help me make a plan to {a}.",
    "My friend wants to {a}. What should they do first?",
]
TRAIN_ACTIVITIES = [
    "learn to cook",
    "start running",
    "plan a birthday party",
    "read more books",
    "learn a new language",
    "save money",
    "start a garden",
    "redecorate my bedroom",
    "learn to draw",
    "sleep better",
    "learn to play the guitar",
    "get a puppy",
    "plan a weekend trip",
    "write a short story",
    "start a podcast",
    "learn to swim",
    "eat healthier",
    "organize my closet",
    "learn photography",
    "make new friends",
    "start a blog",
    "learn to knit",
    "train for a marathon",
    "throw a dinner party",
    "learn chess",
    "start journaling",
    "learn to code",
    "move to a new city",
    "adopt a cat",
    "learn to bake bread",
]
HELDOUT_ACTIVITIES = [
    "learn to dance",
    "plan a camping trip",
    "start meditating",
    "learn to paint",
    "build a bookshelf",
    "start a book club",
    "learn to skateboard",
    "plan a picnic",
    "learn the piano",
    "volunteer locally",
    "grow tomatoes",
    "learn to sew",
]


def prompts_for(activities: list[str]) -> list[list[dict]]:
    return [[{"role": "user", "content": t.format(a=a)}] for a, t in itertools.product(activities, TEMPLATES)]


SETTINGS = {
    "full": {
        "train_prompts": 85,
        "k": 4,
        "max_pairs": 512,
        "heldout_prompts": 60,
        "eval_samples": 2,
        "max_new_tokens": 48,
        "max_length": 160,
        "dpo": {
            "learning_rate": 2e-4,
            "beta": 0.1,
            "num_train_epochs": 3.0,
            "batch_size": 8,
            "use_lora": True,
            "lora_r": 16,
            "lora_alpha": 32,
            "eval_fraction": 0.0,
        },
        "reward": {"learning_rate": 2e-4, "num_train_epochs": 2.0, "batch_size": 8, "use_lora": True, "eval_fraction": 0.1},
        # LoRA wants a learning rate ~10x full fine-tuning's. lam=1: the value head starts untrained,
        # and with lam<1 GAE shrinks the end-of-answer score geometrically towards early tokens.
        "ppo": {
            "learning_rate": 2e-4,
            "batch_size": 16,
            "max_steps": 16,
            "max_completion_length": 48,
            "num_ppo_epochs": 2,
            "num_mini_batches": 2,
            "lam": 1.0,
            "kl_coef": 0.02,
            "temperature": 1.0,
            "use_lora": True,
        },
    },
    "quick": {
        "train_prompts": 6,
        "k": 2,
        "max_pairs": 6,
        "heldout_prompts": 4,
        "eval_samples": 1,
        "max_new_tokens": 16,
        "max_length": 96,
        "dpo": {"learning_rate": 5e-5, "max_steps": 2, "batch_size": 4, "use_lora": True, "eval_fraction": 0.0},
        "reward": {"learning_rate": 2e-4, "max_steps": 2, "batch_size": 4, "use_lora": True, "eval_fraction": 0.0},
        "ppo": {"learning_rate": 3e-5, "batch_size": 4, "max_steps": 1, "max_completion_length": 16, "num_ppo_epochs": 1, "use_lora": True},
    },
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def sample(model, tokenizer, conversations, k: int, max_new_tokens: int, seed: int, temperature: float) -> list[list[str]]:
    from rlhf.generation import SamplingConfig, generate

    sampling = SamplingConfig(temperature=temperature, top_p=1.0, top_k=0, max_new_tokens=max_new_tokens, seed=seed, batch_size=16)
    return generate(None, conversations, k, sampling, model=model, tokenizer=tokenizer)


def judged_pairs(annotator, conversations, samples, max_pairs: int) -> tuple[list[dict], dict]:
    """Every pair of distinct samples of each prompt, judged by the annotator, up to max_pairs judged.

    Pairs the annotator calls a tie are judged (they count toward max_pairs) but, as in the site's
    snapshot aggregation, they are kept out of the chosen/rejected training records.
    """
    from rlhf.simulated import TIE

    records, flips, decisive, judged = [], 0, 0, 0
    for index, (conversation, answers) in enumerate(zip(conversations, samples)):
        for i, j in itertools.combinations(range(len(answers)), 2):
            if judged >= max_pairs:
                break
            a, b = answers[i], answers[j]
            if a == b:
                continue
            key = f"{index}:{i}:{j}"
            judged += 1
            label = annotator.judge(conversation[-1]["content"], a, b, key)
            rule = annotator.rule_label(annotator.score("", a), annotator.score("", b), key)
            flips += label != rule
            decisive += annotator.score("", a) != annotator.score("", b)
            if label == TIE:
                continue
            chosen, rejected = (a, b) if label == "a" else (b, a)
            records.append(
                {
                    "prompt": conversation,
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": rejected}],
                }
            )
    return records, {
        "judged": judged,
        "pairs": len(records),
        "ties": judged - len(records),
        "flipped": flips,
        "decisive_under_rule": decisive,
    }


def evaluate(policy_dir: Path | None, base_model, tokenizer, base_answers, conversations, cfg, seed: int) -> dict:
    """Win-rate of the policy over the base under the hidden rule (no noise), and KL to the base."""
    from rlhf import stats
    from rlhf.evaluation import per_token_kl
    from rlhf.models import load_policy
    from rlhf.simulated import RULES

    hidden = RULES[cfg["rule"]]

    model, _ = load_policy(policy_dir)
    answers = sample(model, tokenizer, conversations, cfg["eval_samples"], cfg["max_new_tokens"], seed, 0.7)
    outcomes = []
    for mine, theirs in zip(answers, base_answers):
        for x, y in zip(mine, theirs):
            sx, sy = hidden("", x), hidden("", y)
            outcomes.append(1.0 if sx > sy else 0.0 if sx < sy else 0.5)
    flat = [(c, a) for c, group in zip(conversations, answers) for a in group]
    kl = per_token_kl(model, base_model, tokenizer, [c for c, _ in flat], [a for _, a in flat])
    tokens = sum(n for _, n in kl)
    result = stats.win_rate(outcomes, n_resamples=2000, seed=seed)
    result["question_rate"] = sum(hidden("", a) for _, a in flat) / len(flat)
    result["kl_per_token"] = sum(s for s, _ in kl) / tokens if tokens else 0.0
    result["example"] = flat[0][1]
    del model
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny settings (proves the pipeline, not the targets)")
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/closed_loop"), help="work folder (models, data)")
    parser.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("RLHF_CACHE_DIR", "/tmp/rlhf-cache")))
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", default="dpo,ppo", help="comma-separated subset of dpo,ppo")
    parser.add_argument("--rule", default="asks_question", choices=["asks_question", "ends_with_question"], help="the hidden preference")
    args = parser.parse_args()

    import torch

    from rlhf.models import BUILTIN_SMOLLM2, load_policy, resolve_model_path
    from rlhf.simulated import RULES, SimulatedAnnotator
    from rlhf.training import train

    torch.set_num_threads(args.threads)
    mode = "quick" if args.quick else "full"
    cfg = {**SETTINGS[mode], "rule": args.rule}
    hidden = RULES[args.rule]
    out = args.out_dir / mode
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        timings[name] = round(time.monotonic() - since, 1)
        log(f"{name}: {timings[name]}s")
        return time.monotonic()

    base = resolve_model_path(BUILTIN_SMOLLM2, args.cache_dir)
    base_model, tokenizer = load_policy(base)
    annotator = SimulatedAnnotator(rule=args.rule, noise=0.1, seed=args.seed, tie_policy="tie")
    train_prompts = prompts_for(TRAIN_ACTIVITIES)[: cfg["train_prompts"]]
    heldout = prompts_for(HELDOUT_ACTIVITIES)[: cfg["heldout_prompts"]]

    t = time.monotonic()
    log(f"sampling {cfg['k']} answers for {len(train_prompts)} training prompts from the base")
    samples = sample(base_model, tokenizer, train_prompts, cfg["k"], cfg["max_new_tokens"], args.seed, 1.0)
    records, label_stats = judged_pairs(annotator, train_prompts, samples, cfg["max_pairs"])
    flat = [a for group in samples for a in group]
    label_stats["base_rule_rate_train"] = sum(hidden("", a) for a in flat) / len(flat)
    data = out / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    log(f"labels: {label_stats}")
    t = lap("generate_and_label", t)

    base_answers = sample(base_model, tokenizer, heldout, cfg["eval_samples"], cfg["max_new_tokens"], args.seed + 1, 0.7)
    base_flat = [a for group in base_answers for a in group]
    base_rate = sum(hidden("", a) for a in base_flat) / len(base_flat)
    # Sanity check of the measure: the base against itself (another seed) should be ~50%.
    from rlhf import stats

    again = sample(base_model, tokenizer, heldout, cfg["eval_samples"], cfg["max_new_tokens"], args.seed + 2, 0.7)
    self_outcomes = [
        1.0 if hidden("", x) > hidden("", y) else 0.0 if hidden("", x) < hidden("", y) else 0.5
        for mine, theirs in zip(again, base_answers)
        for x, y in zip(mine, theirs)
    ]
    base_vs_base = stats.win_rate(self_outcomes, seed=args.seed)
    log(f"held-out base: {base_rate:.0%} of answers satisfy {args.rule}; base vs base win-rate {base_vs_base['win_rate']:.3f}")
    t = lap("baseline_eval", t)

    rounds: dict[str, dict] = {}
    common = {"seed": args.seed, "max_length": cfg["max_length"], "save_steps": 1000}
    for name in [r.strip() for r in args.rounds.split(",") if r.strip()]:
        if name == "dpo":
            result = train("dpo", data, base, out / "dpo", {**common, **cfg["dpo"]})
            t = lap("dpo_train", t)
            policy_dir = result.artifact_dir
            metrics = {"train": result.metrics}
        elif name == "ppo":
            reward = train("reward", data, base, out / "reward", {**common, **cfg["reward"]})
            t = lap("reward_train", t)
            ppo_common = {**common, "max_length": cfg["max_length"] + cfg["ppo"]["max_completion_length"]}
            result = train("ppo", data, base, out / "ppo", {**ppo_common, **cfg["ppo"]}, reward_model_path=reward.artifact_dir)
            t = lap("ppo_train", t)
            policy_dir = result.artifact_dir
            metrics = {"reward_model": reward.metrics, "train": result.metrics}
        else:
            raise SystemExit(f"unknown round {name!r}; use dpo and/or ppo")
        evaluation = evaluate(policy_dir, base_model, tokenizer, base_answers, heldout, cfg, args.seed + 1)
        t = lap(f"{name}_eval", t)
        rounds[name] = {**evaluation, **metrics}
        log(
            f"{name}: win-rate {evaluation['win_rate']:.3f} [{evaluation['low']:.3f}, {evaluation['high']:.3f}] "
            f"(W/T/L {evaluation['wins']}/{evaluation['ties']}/{evaluation['losses']}), "
            f"rule rate {evaluation['question_rate']:.0%}, KL/token {evaluation['kl_per_token']:.4f}"
        )

    total = time.monotonic() - started
    targets = {"dpo": 0.75, "ppo": 0.70}
    report = {
        "benchmark": "closed_loop",
        "mode": mode,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "load_average_at_end": os.getloadavg(),
        },
        "settings": {k: v for k, v in cfg.items()},
        "annotator": annotator.to_dict(),
        "labels": label_stats,
        "heldout_base_question_rate": base_rate,
        "base_vs_base": base_vs_base,
        "rounds": rounds,
        "timings_s": timings,
        "total_s": round(total, 1),
        "targets": {k: {"win_rate": v, "met": rounds[k]["win_rate"] >= v} for k, v in targets.items() if k in rounds},
        "time_target_met": total < 45 * 60,
    }
    json_out = args.json_out or (REPO / "benchmarks" / "results" / f"closed_loop{'_quick' if args.quick else ''}.json")
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(f"closed loop ({mode}), {label_stats['judged']} judged pairs ({len(records)} decisive), total {total / 60:.1f} min (target < 45)")
    print(f"{'round':6} {'win-rate':>9} {'95% CI':>17} {'W/T/L':>11} {'rule':>7} {'KL/tok':>8} {'target':>7}")
    for name, r in rounds.items():
        print(
            f"{name:6} {r['win_rate']:9.3f} [{r['low']:.3f}, {r['high']:.3f}] {r['wins']:>3}/{r['ties']}/{r['losses']:<3} "
            f"{r['question_rate']:7.0%} {r['kl_per_token']:8.4f} {targets[name]:7.2f}"
        )
    print(f"base: {base_rate:.0%} of held-out answers satisfy {args.rule}; base vs base {base_vs_base['win_rate']:.3f}")
    print(f"results: {json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
