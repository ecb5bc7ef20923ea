"""`python -m rlhf train {sft,reward,dpo,ppo,rloo,grpo} --data SNAPSHOT.jsonl --base MODEL_DIR --out DIR ...`

Prints progress lines (`[step/total] loss=... reward=...`) and the artifact folder at the end.
Exit codes: 0 done, 1 failed (missing file, diverged, ...), 2 bad usage or bad config (the message
names the field), 130 cancelled (Ctrl-C; the checkpoint is kept and the same command resumes).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from rlhf.training import METHODS, METHODS_NEEDING_REWARD, config_from_dict


class _TerminalControl:
    """Prints progress at most every `interval_s` seconds (and every log line); Ctrl-C asks for a stop.

    With `json_lines`, each report and log line is one JSON object per line on stdout
    (`{"event": "report", "step": ..., "total": ..., "metrics": {...}}` / `{"event": "log",
    "message": ...}`), which is how a worker follows a run it launched with `accelerate launch`.
    In a multi-process run only rank 0 prints.
    """

    def __init__(self, interval_s: float = 2.0, json_lines: bool = False) -> None:
        self.interval_s = interval_s
        self.json_lines = json_lines
        self._last = 0.0
        self.stop_requested = False
        from rlhf.training.distributed import is_main_process

        self.quiet = not is_main_process()

    def report(self, step: int, total: int, metrics: dict[str, Any] | None = None) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if step > 1 and step < total and now - self._last < self.interval_s:
            return
        self._last = now
        if self.json_lines:
            print(json.dumps({"event": "report", "step": step, "total": total, "metrics": metrics or {}}), flush=True)
            return
        shown = " ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in (metrics or {}).items())
        print(f"[{step}/{total}] {shown}", flush=True)

    def log(self, message: str) -> None:
        if self.quiet:
            return
        if self.json_lines:
            print(json.dumps({"event": "log", "message": message}), flush=True)
            return
        print(message, flush=True)

    def should_stop(self) -> bool:
        return self.stop_requested


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rlhf train",
        description="Train a reward model or a policy on a preference snapshot (TRL conversational JSONL).",
    )
    parser.add_argument("method", choices=METHODS, help="training method")
    parser.add_argument("--data", required=True, type=Path, help="snapshot JSONL (prompt/chosen/rejected per line; sft: messages per line)")
    parser.add_argument("--base", required=True, type=Path, help="parent policy (or backbone for reward) folder")
    parser.add_argument("--out", required=True, type=Path, help="run folder; the artifact ends up in OUT/final")
    parser.add_argument("--config", type=Path, help="JSON file with config fields (defaults for the rest)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON", help="override one field, e.g. --set beta=0.2")
    parser.add_argument("--reward-model", type=Path, help="reward-model artifact folder (ppo, rloo, grpo)")
    parser.add_argument("--json-progress", action="store_true", help="progress and log lines as JSON objects, one per line")
    return parser


def cli(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    try:
        data: dict[str, Any] = {}
        if args.config is not None:
            loaded = json.loads(args.config.read_text())
            if not isinstance(loaded, dict):
                raise ValueError(f"{args.config}: expected a JSON object of config fields")
            data.update(loaded)
        for item in args.set:
            name, sep, raw = item.partition("=")
            if not sep:
                raise ValueError(f"--set {item!r}: expected FIELD=JSON")
            try:
                data[name] = json.loads(raw)
            except json.JSONDecodeError:
                data[name] = raw  # a bare string such as --set loss_type=ipo
        if args.reward_model is not None and args.method not in METHODS_NEEDING_REWARD:
            raise ValueError(f"--reward-model: method {args.method!r} does not use a reward model")
        config = config_from_dict(args.method, data, reward_model=args.reward_model)
    except (OSError, json.JSONDecodeError) as error:
        print(f"error: cannot read config: {error}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"error: bad config: {error}", file=sys.stderr)
        return 2

    from rlhf.progress import RunCancelled
    from rlhf.training import train
    from rlhf.training.callbacks import TrainingDiverged

    control = _TerminalControl(json_lines=args.json_progress)
    previous_handler = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum: int, frame: Any) -> None:
        # First Ctrl-C: stop at the next step with a checkpoint (the same command resumes);
        # a second one aborts at once.
        if control.stop_requested:
            raise KeyboardInterrupt
        control.stop_requested = True
        print("stopping after this step (Ctrl-C again to abort without a checkpoint)", file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        result = train(args.method, args.data, args.base, args.out, config, control=control, reward_model_path=args.reward_model)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RunCancelled as error:
        print(f"cancelled: {error}", file=sys.stderr)
        return 130
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    summary = {"artifact": str(result.artifact_dir), "final_step": result.final_step, "metrics": result.metrics}
    if control.quiet:
        return 0
    if args.json_progress:
        print(json.dumps({"event": "done", **summary}), flush=True)
    else:
        print(json.dumps(summary, indent=2))
    return 0
