"""Multi-device training: run `python -m rlhf train ...` under `accelerate launch` and follow it.

A run whose config asks for `num_processes > 1` is trained by N processes (one per GPU) that
accelerate starts and wires together (torch.distributed: NCCL on GPUs, gloo on CPUs). The
training code is the same as on one device: transformers' Trainer shards the batches, all-reduces
the gradients (DDP) or shards the model (FSDP, `distributed_strategy="fsdp"`), and rank 0 writes
checkpoints and the final artifact (`rlhf.training.distributed.is_main_process`).

The caller (the Celery worker) keeps its `RunControl`: rank 0 prints JSON progress lines
(`--json-progress`) that `run_distributed` turns back into `control.report` / `control.log`
calls, and a cancel request stops the whole process group. A cancelled or killed distributed run
resumes from its last periodic checkpoint (`save_steps`) when launched again with the same
arguments, exactly as a single-process run does.

    result = run_distributed("reward", data, base, out, config, control)   # num_processes from config
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlhf.progress import NullControl, RunCancelled, RunControl
from rlhf.training.callbacks import TrainingDiverged
from rlhf.training.config import BaseTrainConfig
from rlhf.training.run_dir import TrainResult

CANCEL_POLL_SECONDS = 1.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_command(
    method: str,
    data_path: Path | str,
    base_model_path: Path | str,
    out_dir: Path | str,
    config_file: Path | str,
    *,
    num_processes: int,
    strategy: str = "ddp",
    use_cpu: bool | None = None,
    reward_model_path: Path | str | None = None,
    port: int | None = None,
) -> list[str]:
    """The `accelerate launch` command line for one run (FSDP shards whole decoder layers)."""
    if use_cpu is None:
        import torch

        use_cpu = not torch.cuda.is_available()
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        str(num_processes),
        "--num_machines",
        "1",
        "--main_process_port",
        str(port or _free_port()),
        "--mixed_precision",
        "no",  # the Trainer decides (bf16 autocast where supported)
        "--dynamo_backend",
        "no",
    ]
    if num_processes == 1:
        if use_cpu:
            command.append("--cpu")
    elif use_cpu:
        # accelerate's `--cpu` runs ONE process unless mpirun is set up; its torchrun-based
        # multi-process launcher (named --multi_gpu) works on CPUs too: the Trainer runs with
        # use_cpu=True and joins a gloo process group (DistributedType.MULTI_CPU).
        command.append("--multi_gpu")
    elif strategy == "fsdp":
        command += [
            "--use_fsdp",
            "--fsdp_sharding_strategy",
            "FULL_SHARD",
            "--fsdp_auto_wrap_policy",
            "TRANSFORMER_BASED_WRAP",
            "--fsdp_state_dict_type",
            "FULL_STATE_DICT",
            "--fsdp_use_orig_params",
            "true",
        ]
    else:
        command.append("--multi_gpu")
    command += [
        "-m",
        "rlhf",
        "train",
        method,
        "--data",
        str(data_path),
        "--base",
        str(base_model_path),
        "--out",
        str(out_dir),
        "--config",
        str(config_file),
        "--json-progress",
    ]
    if reward_model_path is not None:
        command += ["--reward-model", str(reward_model_path)]
    return command


def run_distributed(
    method: str,
    data_path: Path | str,
    base_model_path: Path | str,
    out_dir: Path | str,
    config: Mapping[str, Any] | BaseTrainConfig,
    control: RunControl | None = None,
    reward_model_path: Path | str | None = None,
    *,
    use_cpu: bool | None = None,
    env: Mapping[str, str] | None = None,
) -> TrainResult:
    """Train with `config.num_processes` processes; returns rank 0's artifact.

    Raises RunCancelled when `control.should_stop()` turned true (the process group is stopped;
    the last periodic checkpoint is kept), TrainingDiverged / RuntimeError when the launched run
    failed (the message carries the tail of its output).
    """
    from rlhf.training import config_from_dict

    control = control or NullControl()
    if not isinstance(config, BaseTrainConfig):
        config = config_from_dict(method, config, reward_model=reward_model_path)
    out_dir = Path(out_dir).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    config_file = out_dir / "launch_config.json"
    tmp = config_file.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, config_file)
    command = launch_command(
        method,
        Path(data_path).absolute(),
        Path(base_model_path).absolute(),
        out_dir,
        config_file,
        num_processes=config.num_processes,
        strategy=config.distributed_strategy,
        use_cpu=use_cpu,
        reward_model_path=Path(reward_model_path).absolute() if reward_model_path is not None else None,
    )
    control.log(f"launching {config.num_processes} processes ({config.distributed_strategy}) with accelerate")
    child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    # Each rank gets its share of the cores instead of all of them (oversubscription is slow).
    child_env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // config.num_processes)))
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env,
        start_new_session=True,  # its own process group, so a cancel stops every rank
    )
    tail: collections.deque[str] = collections.deque(maxlen=40)
    done: dict[str, Any] = {}

    def follow() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            event = _parse_event(line)
            if event is None:
                tail.append(line)
            elif event["event"] == "report":
                control.report(int(event["step"]), int(event["total"]), event.get("metrics") or {})
            elif event["event"] == "log":
                control.log(str(event["message"]))
                tail.append(str(event["message"]))
            elif event["event"] == "done":
                done.update(event)

    reader = threading.Thread(target=follow, daemon=True, name="accelerate-output")
    reader.start()
    cancelled = False
    try:
        while process.poll() is None:
            if not cancelled and control.should_stop():
                cancelled = True
                _stop_group(process)
            time.sleep(CANCEL_POLL_SECONDS if not cancelled else 0.1)
    except BaseException:
        _stop_group(process)
        raise
    reader.join(timeout=10)
    if cancelled:
        raise RunCancelled("cancelled; the last periodic checkpoint is kept and the run resumes from it")
    final_dir = out_dir / "final"
    if process.returncode == 0 and (final_dir / "manifest.json").is_file():
        return TrainResult.from_artifact(final_dir)
    output = "\n".join(tail)
    if "loss became NaN" in output:
        raise TrainingDiverged(next(line for line in tail if "loss became NaN" in line).removeprefix("error: "))
    raise RuntimeError(f"distributed training exited with status {process.returncode} and no artifact; last output:\n{output[-3000:]}")


def _parse_event(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def _stop_group(process: subprocess.Popen[str], grace_s: float = 20.0) -> None:
    """SIGTERM the launcher's process group, then SIGKILL whatever is left after `grace_s`."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
