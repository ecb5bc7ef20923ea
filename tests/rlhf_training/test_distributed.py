"""Multi-process training through `accelerate launch` (DDP over gloo on CPU).

Two processes with per-device batch 4 must reach the same weights as one process with batch 8:
every step sees the same 8 pairs (the whole toy set), DDP averages the two halves' gradients,
which is the gradient of the mean loss over all 8. Only the all-reduce's float summation order
differs, hence a tolerance instead of equality.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlhf.progress import RecordingControl
from rlhf.training import config_from_dict, train
from rlhf.training.launch import launch_command, run_distributed

from .helpers import write_toy_preferences

STEPS = 3


def _weights(artifact: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for path in sorted(artifact.glob("*.safetensors")):
        tensors.update(load_file(path))
    assert tensors, f"no weights in {artifact}"
    return tensors


@pytest.mark.timeout(240)
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tiny_base: Path, tmp_path: Path) -> None:
    data = write_toy_preferences(tmp_path / "pairs.jsonl", count=8, seed=3)
    common = {"learning_rate": 1e-3, "max_steps": STEPS, "eval_fraction": 0.0, "save_steps": 100, "precision": "fp32"}
    env = {"RLHF_DEVICE": "cpu", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}

    # One process: the ordinary single-device path, in this process.
    single = train("reward", data, tiny_base, tmp_path / "one", {**common, "batch_size": 8})

    control = RecordingControl()
    double = run_distributed(
        "reward",
        data,
        tiny_base,
        tmp_path / "two",
        {**common, "batch_size": 4, "num_processes": 2},
        control,
        use_cpu=True,
        env=env,
    )

    assert double.final_step == single.final_step == STEPS
    # Progress came back from rank 0 through the JSON lines, step by step up to the last one.
    assert [step for step, _, _ in control.reports][-1] == STEPS
    assert any("launching 2 processes" in line for line in control.lines)
    assert double.manifest["config"]["num_processes"] == 2

    one, two = _weights(single.artifact_dir), _weights(double.artifact_dir)
    assert one.keys() == two.keys()
    base = _weights(tiny_base)
    moved = max((one[k].float() - base[k].float()).abs().max().item() for k in one if k in base)
    assert moved > 1e-3, "training did not change the weights; the comparison would be vacuous"
    worst = max((one[k].float() - two[k].float()).abs().max().item() for k in one)
    assert worst < 1e-4, f"2-process DDP differs from 1 process by {worst}"
    assert abs(single.metrics["loss"] - double.metrics["loss"]) < 1e-4


def test_launch_command_picks_the_backend_flags(tmp_path: Path) -> None:
    cpu = launch_command("dpo", "d.jsonl", "base", tmp_path, "c.json", num_processes=2, use_cpu=True, port=29600)
    # torchrun-based launcher on CPU too (accelerate's --cpu would start a single process)
    assert cpu[1:3] == ["-m", "accelerate.commands.launch"] and "--multi_gpu" in cpu and "--cpu" not in cpu
    assert cpu[cpu.index("--num_processes") + 1] == "2"
    assert cpu[cpu.index("-m", 3) + 1 :][:3] == ["rlhf", "train", "dpo"] and "--json-progress" in cpu
    gpu = launch_command("dpo", "d.jsonl", "base", tmp_path, "c.json", num_processes=4, use_cpu=False)
    assert "--cpu" not in gpu
    assert "--multi_gpu" in gpu and "--use_fsdp" not in gpu
    fsdp = launch_command("dpo", "d.jsonl", "base", tmp_path, "c.json", num_processes=4, strategy="fsdp", use_cpu=False)
    assert "--use_fsdp" in fsdp and fsdp[fsdp.index("--fsdp_sharding_strategy") + 1] == "FULL_SHARD"


def test_num_processes_is_validated() -> None:
    with pytest.raises(ValueError, match="num_processes: must be between 1 and 64"):
        config_from_dict("dpo", {"num_processes": 0})
    with pytest.raises(ValueError, match=r"num_processes: must be 1, got 2"):
        config_from_dict("ppo", {"num_processes": 2}, check_reward_model=False)
    with pytest.raises(ValueError, match="distributed_strategy"):
        config_from_dict("dpo", {"distributed_strategy": "zero3"})
    assert json.loads(json.dumps(config_from_dict("dpo", {"num_processes": 8}).to_dict()))["num_processes"] == 8
