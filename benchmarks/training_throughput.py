"""Training throughput: this project's DPO and reward training vs a plain, default TRL script.

What it measures
    For each method (dpo, reward) and each implementation:

    * ours   `rlhf.training.train(method, ...)` with the method's default config apart from
             batch_size=4, max_length=256, max_steps=--steps and no held-out evaluation;
    * plain  what a user gets from a plain TRL script: `DPOTrainer` / `RewardTrainer` built from the
             model *path* and a `load_dataset("json", ...)` dataset, with default `DPOConfig` /
             `RewardConfig` apart from per_device_train_batch_size=4, max_length=256,
             max_steps=--steps, use_cpu=True on a CPU-only machine (without it TRL's bf16 default makes
             transformers refuse to start, and the error tells the user to set it), logging_steps=1 (so throughput can be read off the log; logging
             costs nothing measurable) and report_to="none" (no network here);

    on the same data (HH-RLHF harmless-base pairs whose conversations fit in 192..250 tokens, so
    no trainer drops or truncates anything and both see exactly the same pairs; one epoch of
    steps*4 pairs), the same model (SmolLM2-135M-Instruct) and the same machine, one after the other
    in one invocation. Each measured run is its own child process so that its peak memory is its own.

    * tokens/s  trained tokens / training time. Trained tokens are TRL's own `num_tokens` counter,
                which both implementations share: the sum of the attention masks (non-padding tokens)
                of the batches actually trained (DPO: prompt+chosen and prompt+rejected; reward:
                chosen and rejected conversations). Time and tokens are taken at the log of step 1
                and of the last step, so model loading, data preparation, the first (warm-up) step
                and the final checkpoint save are excluded for both.
    * peak RSS  `resource.getrusage(RUSAGE_SELF).ru_maxrss` of the child process (high-water mark
                of the whole run, model loading included).
    * ratio     ours / plain for tokens/s (higher is better) and for peak RSS (lower is better).
                Target: tokens/s ratio >= 1.5 on the 2-core CPU.

Where our speed comes from (CPU)
    Nothing in the training math differs; the differences are defaults and how the work is done:

    * Shared prompts (`rlhf/training/shared_prefix.py`, `shared_prefix=True` by default). TRL runs
      prompt+chosen and prompt+rejected as two full rows; ours runs each pair's prompt once and the
      two answers on its key/value cache (values and gradients equal up to rounding; tests compare
      them). In these HH pairs the prompt is ~80% of each row. For DPO the LM head also projects
      only the answer tokens: on a CPU, TRL's fused head projects every position through the 49k
      vocabulary, which is most of plain TRL's DPO step. This is where most of the gain comes from.

    * `gradient_checkpointing` defaults to True in TRL's configs: every forward is run twice (once
      more in the backward pass), about +30-40% compute. Our configs default it to off
      (`BaseTrainConfig.gradient_checkpointing`), which is right for short sequences and small models.
    * Precision. TRL's configs default to bf16 autocast (plain needs use_cpu=True for it on a CPU).
      Ours (`precision="auto"`) also trains in bf16 autocast where that is faster: on CUDA with bf16
      and on CPUs with native bf16 matmuls (AVX512-BF16 / AMX) for models of >= 100 MB, such as
      SmolLM2-135M; elsewhere float32 (emulated bf16 is slower). So on the dev VM (AMD EPYC with
      AVX512-BF16) both train in bf16 autocast; on a CPU without it ours trains in float32.
    * DPO reference model: ours holds the frozen reference in bf16 weights when training in bf16
      (no float32 copy, nothing for autocast to cast each step); plain TRL loads it in float32.
    * Our reward trainer hands TRL pre-tokenized ids (and keeps the ends of long conversations
      instead of dropping them); that affects data preparation, which is not timed here.
    * Not used by either: padding-free batching (needs flash-attention kernels to keep packed
      sequences apart; a GPU feature), length-grouped batches (the data here all lie in 192..250
      tokens, so padding is small), and DPO `precompute_ref_log_probs` (for one epoch it does the
      same reference forward passes, only earlier; it pays off from the second epoch on).

GPU figures (when CUDA is present)
    Each run also reports model FLOPs utilisation and hardware FLOPs utilisation:
    MFU = tokens/s x (6N [+ 2N for DPO's reference forward]) / peak bf16 FLOP/s,
    HFU = the same with the FLOPs actually executed (+ 2N per token for the recomputed forward when
    gradient checkpointing is on), N = the model's parameter count without embeddings. Peak: a
    table of known GPUs (H100/H200 989 TFLOP/s dense bf16, A100 312, L4 121, ...) or
    `--peak-tflops`. On a CPU these fields are null: no such figure was measured for the README
    on the dev VM (no GPU was lent to this work).

How to read the output
    A table per method with tokens/s, peak RSS, steps, trained tokens and timed seconds for ours
    and plain, then the ratios. JSON with every number goes to `--json-out`
    (default benchmarks/results/training_throughput.json).

Usage
    .venv/bin/python benchmarks/training_throughput.py --steps 2            # smoke, a few minutes
    .venv/bin/python benchmarks/training_throughput.py --steps 6 --methods dpo reward
    .venv/bin/python benchmarks/training_throughput.py --steps 3 --methods reward --concurrent   # shared CPU

On a machine shared with other jobs, sequential runs see different background load and their
ratio mostly measures that; `--concurrent` runs ours and plain side by side so both timed windows
see the same load (each gets about half of what is left).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS_DIR = REPO / "benchmarks" / "results"
BATCH_SIZE = 4
MAX_LENGTH = 256
MIN_TOKENS, MAX_TOKENS = 192, 250  # conversation length window of the pairs used (chat template applied)


def prepare_data(steps: int, cache_dir: Path, out: Path) -> dict:
    """steps*BATCH_SIZE HH pairs whose chosen and rejected conversations both fit the window."""
    from reward_hh import TRAIN_FILE, hh_to_trl_records, write_jsonl
    from transformers import AutoTokenizer

    from rlhf.models import resolve_model_path

    base = resolve_model_path("builtin:smollm2-135m-instruct", cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(base)
    needed = steps * BATCH_SIZE
    chosen_records, lengths = [], []
    for record in hh_to_trl_records(TRAIN_FILE):
        pair_lengths = [
            len(tokenizer.apply_chat_template(record["prompt"] + record[key], tokenize=True, return_dict=True)["input_ids"])
            for key in ("chosen", "rejected")
        ]
        if all(MIN_TOKENS <= n <= MAX_TOKENS for n in pair_lengths):
            chosen_records.append(record)
            lengths.extend(pair_lengths)
            if len(chosen_records) == needed:
                break
    if len(chosen_records) < needed:
        raise SystemExit(f"only {len(chosen_records)} pairs fit {MIN_TOKENS}..{MAX_TOKENS} tokens; lower --steps")
    write_jsonl(chosen_records, out)
    return {"pairs": len(chosen_records), "mean_tokens_per_sequence": sum(lengths) / len(lengths), "base": str(base)}


# --------------------------------------------------------------------------------------------
# Child: one measured run
# --------------------------------------------------------------------------------------------


class StepClock:
    """(time, cumulative trained tokens) at each logged step."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float, float]] = []

    def add(self, step: int, num_tokens: float | None) -> None:
        if num_tokens is not None:
            self.points.append((step, time.monotonic(), float(num_tokens)))

    def summary(self) -> dict:
        if len(self.points) < 2:
            return {"error": "fewer than 2 logged steps; use --steps >= 2"}
        (s0, t0, n0), (s1, t1, n1) = self.points[0], self.points[-1]
        return {
            "timed_steps": s1 - s0,
            "timed_tokens": n1 - n0,
            "timed_s": t1 - t0,
            "tokens_per_s": (n1 - n0) / (t1 - t0),
            "s_per_step": (t1 - t0) / (s1 - s0),
            "total_tokens": n1,
        }


def run_ours(method: str, data: Path, base: Path, steps: int, work: Path) -> dict:
    from rlhf.training import config_from_dict, train

    clock = StepClock()

    class Control:
        def report(self, step, total, metrics=None):  # noqa: ANN001
            clock.add(step, (metrics or {}).get("num_tokens"))

        def log(self, message):  # noqa: ANN001
            pass

        def should_stop(self):
            return False

    config = config_from_dict(
        method,
        {"batch_size": BATCH_SIZE, "max_length": MAX_LENGTH, "max_steps": steps, "eval_fraction": 0.0, "save_steps": 10_000},
    )
    train(method, data, base, work / "run", config, control=Control())
    from rlhf.training.devices import choose_device

    return {"config": config.to_dict(), "bf16": choose_device(config, base).bf16, **clock.summary()}


def run_plain(method: str, data: Path, base: Path, steps: int, work: Path) -> dict:
    from datasets import load_dataset
    from transformers import TrainerCallback

    clock = StepClock()

    class Clock(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if logs and "loss" in logs:
                clock.add(state.global_step, logs.get("num_tokens"))

    dataset = load_dataset("json", data_files=str(data), split="train")
    common = {
        "output_dir": str(work / "plain"),
        "per_device_train_batch_size": BATCH_SIZE,
        "max_length": MAX_LENGTH,
        "max_steps": steps,
        "logging_steps": 1,
        "report_to": "none",
    }
    import torch

    if not torch.cuda.is_available():
        # TRL's bf16=True default makes transformers refuse to start on a CPU-only machine ("Your
        # setup doesn't support bf16/gpu. You need to assign use_cpu ..."); use_cpu=True is the fix
        # the error message itself tells a user to apply, and bf16 autocast then stays on.
        common["use_cpu"] = True
    if method == "dpo":
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(**common)
        trainer = DPOTrainer(model=str(base), args=args, train_dataset=dataset, callbacks=[Clock()])
    else:
        from trl import RewardConfig, RewardTrainer

        args = RewardConfig(**common)
        trainer = RewardTrainer(model=str(base), args=args, train_dataset=dataset, callbacks=[Clock()])
    trainer.train()
    settings = {
        k: getattr(args, k, None)
        for k in ("bf16", "gradient_checkpointing", "activation_checkpointing", "learning_rate", "padding_free", "use_cpu")
    }
    return {"config": {k: v for k, v in settings.items() if v is not None or k == "padding_free"}, **clock.summary()}


GPU_PEAK_BF16_TFLOPS = {  # dense bf16 tensor-core peak per GPU, vendor data sheets
    "H200": 989.0,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10": 125.0,
}


def peak_tflops(gpu_name: str | None, override: float | None) -> float | None:
    if override:
        return override
    if not gpu_name:
        return None
    for key, value in GPU_PEAK_BF16_TFLOPS.items():  # most specific names first
        if key in gpu_name:
            return value
    return None


def non_embedding_params(base: Path) -> int:
    """Parameter count without the token embeddings (tied to the LM head in SmolLM2), from config.json."""
    config = json.loads((Path(base) / "config.json").read_text())
    h, layers, inter = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    heads, kv = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    head_dim = config.get("head_dim") or h // heads
    attention = h * heads * head_dim * 2 + h * kv * head_dim * 2
    mlp = 3 * h * inter
    return layers * (attention + mlp + 2 * h) + h


def flops_utilisation(method: str, run: dict, params: int, peak: float | None) -> dict:
    """MFU / HFU of one run (None without a known peak, i.e. on a CPU)."""
    if not peak or "tokens_per_s" not in run:
        return {"mfu": None, "hfu": None}
    model_flops_per_token = 6 * params + (2 * params if method == "dpo" else 0)
    cfg = run.get("config", {})
    recompute = bool(cfg.get("gradient_checkpointing") or cfg.get("activation_checkpointing"))
    hardware_flops_per_token = model_flops_per_token + (2 * params if recompute else 0)
    return {
        "mfu": run["tokens_per_s"] * model_flops_per_token / (peak * 1e12),
        "hfu": run["tokens_per_s"] * hardware_flops_per_token / (peak * 1e12),
        "peak_tflops": peak,
    }


def child_main(method: str, impl: str, data: Path, base: Path, steps: int, json_path: Path) -> None:
    import torch

    work = Path(tempfile.mkdtemp(prefix=f"throughput-{method}-{impl}-"))
    try:
        started = time.monotonic()
        result = (run_ours if impl == "ours" else run_plain)(method, data, base, steps, work)
        result["wall_s"] = time.monotonic() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is KiB on Linux
    if torch.cuda.is_available():
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["gpu"] = torch.cuda.get_device_name(0)
    result["torch_threads"] = torch.get_num_threads()
    json_path.write_text(json.dumps(result, default=str))


# --------------------------------------------------------------------------------------------
# Parent
# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring for what is measured and how to read it.",
    )
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per run (batch 4); step 1 is warm-up (default 6)")
    parser.add_argument("--methods", nargs="+", choices=["dpo", "reward"], default=["dpo", "reward"])
    parser.add_argument("--json-out", type=Path, default=RESULTS_DIR / "training_throughput.json")
    parser.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("RLHF_CACHE_DIR", "/tmp/rlhf-cache")))
    parser.add_argument(
        "--concurrent", action="store_true", help="run ours and plain side by side (same background load; for shared machines)"
    )
    parser.add_argument("--peak-tflops", type=float, default=None, help="GPU peak bf16 TFLOP/s for MFU (default: known-GPU table)")
    parser.add_argument("--_child", nargs=5, metavar=("METHOD", "IMPL", "DATA", "BASE", "JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args._child:
        method, impl, data, base, json_path = args._child
        child_main(method, impl, Path(data), Path(base), args.steps, Path(json_path))
        return
    if args.steps < 2:
        parser.error("--steps must be >= 2 (step 1 is the untimed warm-up)")

    from reward_hh import machine_info

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    data = RESULTS_DIR / f"throughput_data_{'_'.join(args.methods)}.jsonl"
    data_info = prepare_data(args.steps, args.cache_dir, data)
    print(f"data: {data_info['pairs']} pairs, mean {data_info['mean_tokens_per_sequence']:.0f} tokens per sequence", flush=True)

    runs: dict[str, dict[str, dict]] = {}
    for method in args.methods:
        # Sequential (default): ours, then plain, each alone. --concurrent: both at once, so that on
        # a machine shared with other jobs both see the same background load during their timed steps.
        batches = [("ours", "plain")] if args.concurrent else [("ours",), ("plain",)]
        for batch in batches:
            started = {}
            for impl in batch:
                out = RESULTS_DIR / f".throughput_{method}_{impl}_{os.getpid()}.json"
                out.unlink(missing_ok=True)
                print(f"running {method} / {impl} ({args.steps} steps) ...", flush=True)
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--steps",
                        str(args.steps),
                        "--_child",
                        method,
                        impl,
                        str(data),
                        data_info["base"],
                        str(out),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                started[impl] = (proc, out, time.monotonic())
            for impl, (proc, out, t0) in started.items():
                stdout, stderr = proc.communicate()
                if proc.returncode != 0 or not out.is_file():
                    print(stdout[-3000:], stderr[-5000:], sep="\n")
                    runs.setdefault(method, {})[impl] = {"error": f"exit {proc.returncode}"}
                    continue
                runs.setdefault(method, {})[impl] = json.loads(out.read_text())
                out.unlink()
                print(f"  {impl} done in {time.monotonic() - t0:.0f} s", flush=True)

    report = {
        "benchmark": "training_throughput",
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": "SmolLM2-135M-Instruct",
        "batch_size": BATCH_SIZE,
        "max_length": MAX_LENGTH,
        "steps": args.steps,
        "concurrent": args.concurrent,
        "data": data_info,
        "machine": machine_info(),
        "runs": runs,
        "ratios": {},
    }
    params = non_embedding_params(Path(data_info["base"]))
    report["non_embedding_params"] = params
    for method, pair in runs.items():
        for run in pair.values():
            run.update(flops_utilisation(method, run, params, peak_tflops(run.get("gpu"), args.peak_tflops)))
    for method, pair in runs.items():
        ours, plain = pair.get("ours", {}), pair.get("plain", {})
        if "tokens_per_s" in ours and "tokens_per_s" in plain:
            report["ratios"][method] = {
                "tokens_per_s_ours_over_plain": ours["tokens_per_s"] / plain["tokens_per_s"],
                "peak_rss_ours_over_plain": ours["peak_rss_mb"] / plain["peak_rss_mb"],
            }
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print_table(report)
    print(f"\nwritten {args.json_out}")


def print_table(report: dict) -> None:
    m = report["machine"]
    print(
        f"\ntraining throughput, {report['model']}, batch {report['batch_size']}, max_length {report['max_length']}, "
        f"{report['steps']} steps (step 1 untimed), mean {report['data']['mean_tokens_per_sequence']:.0f} tokens/sequence"
        + (", ours and plain run side by side" if report.get("concurrent") else "")
    )
    print(f"machine: {m['nproc']} CPUs, {m['cpu_model']}, torch {m['torch']}, {report['date_utc']}")
    header = f"{'method':8} {'impl':6} {'tokens/s':>9} {'s/step':>7} {'timed tok':>10} {'peak RSS MB':>12}  settings"
    print("-" * len(header) + "-" * 30)
    print(header)
    print("-" * len(header) + "-" * 30)
    for method, pair in report["runs"].items():
        for impl in ("ours", "plain"):
            r = pair.get(impl, {})
            if "tokens_per_s" not in r:
                print(f"{method:8} {impl:6} {'failed: ' + str(r.get('error'))}")
                continue
            cfg = r.get("config", {})
            if impl == "ours":
                settings = (
                    f"gradient_checkpointing={cfg.get('gradient_checkpointing')}, precision={cfg.get('precision')} (bf16={r.get('bf16')})"
                )
            else:
                settings = ", ".join(
                    f"{k}={v}" for k, v in cfg.items() if k in ("bf16", "gradient_checkpointing", "activation_checkpointing")
                )
            print(
                f"{method:8} {impl:6} {r['tokens_per_s']:9.1f} {r['s_per_step']:7.2f} {r['timed_tokens']:10.0f} "
                f"{r['peak_rss_mb']:12.0f}  {settings}"
            )
            if r.get("mfu") is not None:
                print(
                    f"{'':15} MFU {100 * r['mfu']:.1f}%  HFU {100 * r['hfu']:.1f}%  (peak {r['peak_tflops']} TFLOP/s, "
                    f"{r.get('gpu')}, peak CUDA memory {r.get('peak_cuda_mb', 0):.0f} MB)"
                )
    print("-" * len(header) + "-" * 30)
    for method, ratio in report["ratios"].items():
        verdict = "meets" if ratio["tokens_per_s_ours_over_plain"] >= 1.5 else "BELOW"
        print(
            f"{method:8} ours/plain: tokens/s x{ratio['tokens_per_s_ours_over_plain']:.2f} ({verdict} the 1.5x target), "
            f"peak RSS x{ratio['peak_rss_ours_over_plain']:.2f}"
        )


if __name__ == "__main__":
    main()
