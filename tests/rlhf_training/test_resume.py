"""Cancel and resume: an interrupted run continues from its checkpoint to the same end as an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from rlhf.progress import RecordingControl, RunCancelled
from rlhf.training import train

from .helpers import ascii_reward

CONFIGS = {
    "reward": {"learning_rate": 1e-3, "max_steps": 6, "batch_size": 4, "save_steps": 2, "eval_fraction": 0.25},
    "ppo": {"learning_rate": 1e-3, "max_steps": 5, "batch_size": 8, "num_mini_batches": 2, "max_completion_length": 4, "save_steps": 2},
    "rloo": {"learning_rate": 1e-3, "max_steps": 6, "batch_size": 8, "num_generations": 4, "max_completion_length": 4, "save_steps": 2},
    "grpo": {"learning_rate": 1e-3, "max_steps": 6, "batch_size": 8, "num_generations": 4, "max_completion_length": 4, "save_steps": 2},
}


def weights(artifact: Path) -> dict:
    return load_file(str(artifact / "model.safetensors"))


@pytest.mark.parametrize("method", list(CONFIGS))
def test_cancel_keeps_a_checkpoint_and_resume_matches_an_uninterrupted_run(method, tiny_base, small_data, tmp_path):
    config = CONFIGS[method]
    reward = {"reward_fn": ascii_reward} if method in {"ppo", "rloo", "grpo"} else {}
    straight = train(method, small_data, tiny_base, tmp_path / "straight", config, **reward)

    out = tmp_path / "interrupted"
    with pytest.raises(RunCancelled, match="checkpoint kept"):
        train(method, small_data, tiny_base, out, config, control=RecordingControl(stop_after_step=2), **reward)
    checkpoints = sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert checkpoints and (checkpoints[-1] / "trainer_state.json").is_file()
    assert not (out / "final").exists()
    stopped_at = int(checkpoints[-1].name.split("-")[1])
    assert 2 <= stopped_at <= 3  # "at the next step": right after the report that asked to stop

    # A kill during a later save leaves a half-written folder; resume must skip (and delete) it.
    broken = out / "checkpoints" / "checkpoint-999"
    broken.mkdir()
    (broken / "optimizer.pt").write_bytes(b"partial")

    control = RecordingControl()
    resumed = train(method, small_data, tiny_base, out, config, control=control, **reward)
    assert control.reports[0][0] == stopped_at + 1  # continued, not restarted
    assert any("resum" in line for line in control.lines)
    assert not broken.exists()
    assert resumed.final_step == straight.final_step == config["max_steps"]
    assert resumed.metrics == straight.metrics
    a, b = weights(straight.artifact_dir), weights(resumed.artifact_dir)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


@pytest.mark.parametrize(("method", "extra"), [("reward", {}), ("dpo", {"use_lora": True, "learning_rate": 1e-3})])
def test_resume_from_the_final_checkpoint_takes_no_extra_step(method, extra, tiny_base, small_data, tmp_path):
    """Killed after the last checkpoint but before the artifact: the restart only writes the artifact.

    (transformers 5.23 on its own trains one step past max_steps when resumed at max_steps.)
    """
    config = {"max_steps": 3, "batch_size": 4, "save_steps": 100, "eval_fraction": 0.25, **extra}
    straight = train(method, small_data, tiny_base, tmp_path / "straight", config)
    with pytest.raises(RunCancelled, match="cancelled at step 3"):
        train(method, small_data, tiny_base, tmp_path / "run", config, control=RecordingControl(stop_after_step=2))
    control = RecordingControl()
    resumed = train(method, small_data, tiny_base, tmp_path / "run", config, control=control)
    assert control.reports == [] and resumed.final_step == 3
    assert resumed.metrics == straight.metrics
    name = "adapter_model.safetensors" if extra.get("use_lora") else "model.safetensors"
    a, b = load_file(str(straight.artifact_dir / name)), load_file(str(resumed.artifact_dir / name))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_finished_run_is_returned_again_and_a_different_config_is_refused(tiny_base, small_data, tmp_path):
    config = {"max_steps": 2, "batch_size": 4, "save_steps": 100}
    first = train("dpo", small_data, tiny_base, tmp_path / "run", config)
    control = RecordingControl()
    again = train("dpo", small_data, tiny_base, tmp_path / "run", config, control=control)
    assert again == first and control.reports == []  # nothing retrained, one artifact
    with pytest.raises(ValueError, match="already holds a different run .*config_hash"):
        train("dpo", small_data, tiny_base, tmp_path / "run", {**config, "beta": 0.5})


def _cli(out: Path, data: Path, base: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rlhf",
        "train",
        "dpo",
        "--data",
        str(data),
        "--base",
        str(base),
        "--out",
        str(out),
        "--set",
        "max_steps=60",
        "--set",
        "save_steps=5",
        "--set",
        "batch_size=4",
        "--set",
        "learning_rate=1e-3",
    ]


@pytest.mark.slow
def test_sigkilled_worker_process_resumes_to_the_same_final_step(tiny_base, small_data, tmp_path):
    """A real process killed with SIGKILL mid-run; the same command finishes it with the metrics of an unkilled run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RLHF_DEVICE": "cpu", "PYTHONPATH": str(Path.cwd())}
    reference = tmp_path / "reference"
    subprocess.run(_cli(reference, small_data, tiny_base), env=env, check=True, capture_output=True, timeout=300)

    out = tmp_path / "killed"
    process = subprocess.Popen(_cli(out, small_data, tiny_base), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    marker = out / "checkpoints" / "checkpoint-10" / "trainer_state.json"
    while not marker.exists():
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (out / "final").exists(), "the run finished before it could be killed; make it longer"

    finished = subprocess.run(_cli(out, small_data, tiny_base), env=env, check=True, capture_output=True, timeout=300)
    assert "resuming from checkpoint-" in finished.stdout.decode()
    killed_manifest = json.loads((out / "final" / "manifest.json").read_text())
    reference_manifest = json.loads((reference / "final" / "manifest.json").read_text())
    assert killed_manifest["final_step"] == reference_manifest["final_step"] == 60
    assert killed_manifest["metrics"] == reference_manifest["metrics"]
    assert load_file(str(out / "final" / "model.safetensors")).keys() == load_file(str(reference / "final" / "model.safetensors")).keys()
