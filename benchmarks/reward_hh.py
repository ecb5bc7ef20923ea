"""Reward-model benchmark on real preference data (Anthropic HH-RLHF, harmless-base).

What it measures
    A Bradley–Terry reward model is trained with this project's trainer
    (`rlhf.training.train("reward", ...)`) starting from SmolLM2-135M-Instruct on
    `harmless-base-test-rest-1812.jsonl.gz` (1812 pairs), then scored on the disjoint
    `harmless-base-test-500.jsonl.gz` (500 pairs) with `rlhf.training.reward.evaluate_pairs`:

    * accuracy      strict: a pair counts as right only if r(chosen) > r(rejected); a tie is wrong
    * tie_fraction  fraction of eval pairs with r(chosen) == r(rejected)
    * margin        mean r(chosen) - r(rejected)

    Target: strict accuracy >= 0.60. For scale, OpenAssistant's deberta-v3-large-v2 reward model
    scores 0.56-0.59 on this subset; chance is 0.50.

How the data is prepared
    Both files are parsed with the site's own importer (`feedback_site.annotation.importers.parse_hh_rlhf`,
    pure Python) and written as TRL conversational preference JSONL
    (`{"prompt": [messages], "chosen": [assistant msg], "rejected": [assistant msg]}`) under the
    output folder. In HH-RLHF the two conversations share every turn except the last assistant
    reply, so the signal is at the *end*. The trainer keeps the last `max_length` tokens of a
    longer conversation (in training and in scoring), so a short `--max-length` keeps the final
    human turn and both replies while cutting old context; that is what makes CPU training
    affordable.

How to read the output
    A table with the train/eval sizes, settings, train/eval/total wall time, accuracy, tie
    fraction and margin, plus the machine (nproc, CPU model, torch version). The same numbers
    go to `benchmarks/results/reward_hh.json` (or `--json-out`). If `--limit-train` /
    `--limit-eval` were given, the run is a *subset* run and the table says so.

Usage
    .venv/bin/python benchmarks/reward_hh.py --limit-train 16 --limit-eval 16 --max-length 64   # smoke, ~1 min
    .venv/bin/python benchmarks/reward_hh.py                                                   # full run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DATA_DIR = REPO.parent / "shared" / "data" / "hh-rlhf"
TRAIN_FILE = DATA_DIR / "harmless-base-test-rest-1812.jsonl.gz"
EVAL_FILE = DATA_DIR / "harmless-base-test-500.jsonl.gz"
RESULTS_DIR = REPO / "benchmarks" / "results"
BASE_MODEL = "builtin:smollm2-135m-instruct"


def hh_to_trl_records(path: Path) -> list[dict]:
    """HH-RLHF file -> TRL conversational preference records via the site's importer."""
    from feedback_site.annotation.importers import parse_hh_rlhf

    pairs = parse_hh_rlhf(path.read_bytes(), path.name)
    records = []
    for pair in pairs:
        # parse_hh_rlhf puts the original "chosen" reply in response_a (preferred="a").
        if pair.preferred not in (None, "a"):
            raise ValueError(f"{path}, line {pair.line}: unexpected preference {pair.preferred!r}")
        records.append(
            {
                "prompt": pair.prompt.to_messages(),
                "chosen": [{"role": "assistant", "content": pair.response_a}],
                "rejected": [{"role": "assistant", "content": pair.response_b}],
            }
        )
    return records


def write_jsonl(records: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def machine_info() -> dict:
    import torch

    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "nproc": os.cpu_count() if not hasattr(os, "sched_getaffinity") else len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model or platform.processor(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import transformers
        import trl

        info.update(transformers=transformers.__version__, trl=trl.__version__)
    except ImportError:
        pass
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring for how to read the output.",
    )
    parser.add_argument("--max-length", type=int, default=128, help="token budget per conversation; the last tokens are kept (default 128)")
    parser.add_argument("--epochs", type=float, default=1.0, help="passes over the training pairs (default 1)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--lora", dest="lora", action="store_true", default=True, help="train a LoRA adapter + the score head (default)")
    mode.add_argument("--full", dest="lora", action="store_false", help="full fine-tune")
    mode.add_argument(
        "--top-layers",
        type=int,
        default=None,
        metavar="N",
        help="full fine-tune of the top N layers + head only (lower layers frozen; cheapest on CPU)",
    )
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-4 with LoRA, 2e-5 full)")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per optimizer step (default 8)")
    parser.add_argument("--warmup-ratio", type=float, default=0.05)
    parser.add_argument("--limit-train", type=int, default=None, metavar="N", help="train on the first N pairs only")
    parser.add_argument("--limit-eval", type=int, default=None, metavar="N", help="evaluate on the first N pairs only")
    parser.add_argument("--eval-max-length", type=int, default=None, help="token budget when scoring (default: --max-length)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR / "reward_hh_run", help="run folder (replaced)")
    parser.add_argument("--json-out", type=Path, default=RESULTS_DIR / "reward_hh.json")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("RLHF_CACHE_DIR", "/tmp/rlhf-cache")),
        help="where the builtin base model is converted once (default /tmp/rlhf-cache)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's, one per core); 1 is faster on a CPU shared with other jobs",
    )
    args = parser.parse_args(argv)
    if args.top_layers is not None:
        args.lora = False
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from rlhf.models import resolve_model_path
    from rlhf.scoring import RewardModelScorer, encode_conversation, evaluate_pairs
    from rlhf.training import config_from_dict, train

    started = time.monotonic()
    train_records = hh_to_trl_records(TRAIN_FILE)
    eval_records = hh_to_trl_records(EVAL_FILE)
    full_sizes = (len(train_records), len(eval_records))
    if args.limit_train:
        train_records = train_records[: args.limit_train]
    if args.limit_eval:
        eval_records = eval_records[: args.limit_eval]

    if args.out_dir.exists():
        shutil.rmtree(args.out_dir)
    data_path = args.out_dir / "data" / "train.jsonl"
    write_jsonl(train_records, data_path)
    write_jsonl(eval_records, args.out_dir / "data" / "eval.jsonl")

    base = resolve_model_path(BASE_MODEL, args.cache_dir)
    lr = args.lr if args.lr is not None else (2e-4 if args.lora else 5e-5 if args.top_layers else 2e-5)
    config = config_from_dict(
        "reward",
        {
            "learning_rate": lr,
            "num_train_epochs": args.epochs,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "warmup_ratio": args.warmup_ratio,
            "use_lora": args.lora,
            "train_top_layers": args.top_layers,
            "lora_r": args.lora_r,
            "lora_alpha": 2 * args.lora_r,
            "eval_fraction": 0.0,  # we evaluate on the separate 500-pair file
            "save_steps": 10_000,  # one checkpoint, at the last step
            "seed": args.seed,
            "precision": "auto",
        },
    )

    class Printer:
        def __init__(self) -> None:
            self.last = 0.0

        def report(self, step, total, metrics=None):  # noqa: ANN001
            now = time.monotonic()
            if now - self.last >= 30 or step == total:
                self.last = now
                m = metrics or {}
                print(
                    f"  step {step}/{total}  loss {m.get('loss', float('nan')):.4f}  "
                    f"acc {m.get('accuracy', float('nan')):.3f}  tok/s {m.get('tokens_per_s', float('nan')):.0f}  "
                    f"eta {m.get('eta_s', float('nan')):.0f}s",
                    flush=True,
                )

        def log(self, message):  # noqa: ANN001
            print(f"  [train] {message}", flush=True)

        def should_stop(self):
            return False

    mode_name = "lora" if args.lora else ("full" if args.top_layers is None else f"top-{args.top_layers}-layers")
    print(f"training on {len(train_records)} pairs ({mode_name}, lr {lr}, max_length {args.max_length}, epochs {args.epochs})", flush=True)
    t0 = time.monotonic()
    result = train("reward", data_path, base, args.out_dir / "run", config, control=Printer())
    train_s = time.monotonic() - t0

    eval_max_length = args.eval_max_length or args.max_length
    t0 = time.monotonic()
    scorer = RewardModelScorer.load(result.artifact_dir, device="cpu" if not _cuda() else "cuda", batch_size=16, max_length=eval_max_length)
    # Order does not change the accuracy; sorting by length only reduces padding in the batches.
    lengths = [len(encode_conversation(scorer.tokenizer, r["prompt"] + r["chosen"], eval_max_length)) for r in eval_records]
    ordered = [r for _, r in sorted(zip(lengths, eval_records, strict=True), key=lambda item: item[0])]
    with _scoring_precision(scorer) as eval_precision:
        metrics = evaluate_pairs(scorer, ordered)
    eval_s = time.monotonic() - t0

    subset = bool(args.limit_train and args.limit_train < full_sizes[0]) or bool(args.limit_eval and args.limit_eval < full_sizes[1])
    report = {
        "benchmark": "reward_hh",
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "subset_run": subset,
        "train_file": TRAIN_FILE.name,
        "eval_file": EVAL_FILE.name,
        "train_pairs": len(train_records),
        "train_pairs_available": full_sizes[0],
        "eval_pairs": len(eval_records),
        "eval_pairs_available": full_sizes[1],
        "base_model": BASE_MODEL,
        "mode": mode_name,
        "train_precision": "bf16 autocast" if _train_bf16(config, base) else "fp32",
        "learning_rate": lr,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "eval_max_length": eval_max_length,
        "eval_precision": eval_precision,
        "final_step": result.final_step,
        "train_metrics_last_step": result.metrics,
        "eval_accuracy_strict": metrics["accuracy"],
        "eval_tie_fraction": metrics["tie_fraction"],
        "eval_margin": metrics["margin"],
        "target_accuracy": 0.60,
        "train_wall_s": round(train_s, 1),
        "eval_wall_s": round(eval_s, 1),
        "total_wall_s": round(time.monotonic() - started, 1),
        "machine": machine_info(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwritten {args.json_out}")
    return report


@contextlib.contextmanager
def _scoring_precision(scorer):  # noqa: ANN001
    """bf16 autocast for the backbone on CPUs with native bf16 (about 2x faster), the scalar head in
    float32 so rewards are not rounded to bf16 (which would create ties, and ties count as wrong)."""
    import torch

    from rlhf.training.devices import cpu_has_native_bf16

    if _cuda() or not cpu_has_native_bf16():
        yield "fp32"
        return

    class Float32Head(torch.nn.Module):
        def __init__(self, head):  # noqa: ANN001
            super().__init__()
            self.head = head

        def forward(self, hidden):  # noqa: ANN001
            with torch.autocast("cpu", enabled=False):
                return self.head(hidden.float())

    model = scorer.model
    head = model.score
    model.score = Float32Head(head)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield "bf16 autocast backbone, fp32 head"
    finally:
        model.score = head


def _train_bf16(config, base) -> bool:  # noqa: ANN001
    from rlhf.training.devices import choose_device

    return choose_device(config, base).bf16


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def print_table(r: dict) -> None:
    m = r["machine"]
    rows = [
        ("run", "SUBSET (limits given)" if r["subset_run"] else "full"),
        ("train pairs", f"{r['train_pairs']} of {r['train_pairs_available']} ({r['train_file']})"),
        ("eval pairs", f"{r['eval_pairs']} of {r['eval_pairs_available']} ({r['eval_file']})"),
        (
            "model / mode",
            f"{r['base_model']} / {r['mode']}, lr {r['learning_rate']}, batch {r['batch_size']}, "
            f"epochs {r['epochs']}, steps {r['final_step']}",
        ),
        ("train precision", r.get("train_precision", "")),
        ("max_length (train / eval)", f"{r['max_length']} / {r['eval_max_length']} (last tokens kept)"),
        ("eval precision", r.get("eval_precision", "")),
        ("strict accuracy", f"{r['eval_accuracy_strict']:.4f}  (target >= {r['target_accuracy']:.2f})"),
        ("tie fraction", f"{r['eval_tie_fraction']:.4f}"),
        ("mean margin", f"{r['eval_margin']:.4f}"),
        ("wall time train / eval / total", f"{r['train_wall_s']} s / {r['eval_wall_s']} s / {r['total_wall_s']} s"),
        (
            "machine",
            f"{m['nproc']} CPUs, {m['cpu_model']}, torch {m['torch']} ({m['torch_threads']} threads)"
            + (f", GPU {m['cuda']}" if m.get("cuda") else ""),
        ),
    ]
    width = max(len(k) for k, _ in rows)
    print("\nreward_hh results")
    print("-" * (width + 60))
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    print("-" * (width + 60))


if __name__ == "__main__":
    main()
