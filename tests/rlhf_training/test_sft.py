"""SFT (TRL SFTTrainer) on toy demonstrations: held-out loss goes down, full and LoRA; bad data
is refused naming the line; the CLI trains and a second call returns the finished artifact."""

from __future__ import annotations

import json
import random

import pytest

from rlhf.training import config_from_dict, train
from rlhf.training.sft import load_demonstrations

from .helpers import NICE_WORDS, TOPICS


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    """Demonstrations with a learnable pattern: the answer repeats the topic with a nice word."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("sft") / "demos.jsonl"
    with open(path, "w") as handle:
        for _ in range(80):
            topic = rng.choice(TOPICS)
            messages = [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": f"Tell me about {topic}."},
                {"role": "assistant", "content": f"{topic} are {rng.choice(NICE_WORDS)}."},
            ]
            handle.write(json.dumps({"messages": messages}) + "\n")
    return path


def test_full_sft_lowers_the_held_out_loss(tiny_base, demos, tmp_path):
    config = {"learning_rate": 3e-3, "max_steps": 15, "batch_size": 8, "eval_fraction": 0.2, "save_steps": 100}
    result = train("sft", demos, tiny_base, tmp_path / "run", config)
    metrics = result.metrics
    assert metrics["eval_loss"] < metrics["eval_loss_before"] * 0.7, metrics
    assert not result.is_adapter and result.manifest["method"] == "sft"
    assert result.manifest["heldout_demonstrations"] == 16
    again = train("sft", demos, tiny_base, tmp_path / "run", config)  # idempotent: the finished artifact
    assert again.artifact_dir == result.artifact_dir and again.metrics == metrics


def test_lora_sft_trains_an_adapter_and_lowers_the_held_out_loss(tiny_base, demos, tmp_path):
    config = {
        "learning_rate": 1e-2,
        "max_steps": 15,
        "batch_size": 8,
        "eval_fraction": 0.2,
        "save_steps": 100,
        "use_lora": True,
        "lora_r": 8,
    }
    result = train("sft", demos, tiny_base, tmp_path / "run", config)
    assert result.is_adapter and (result.artifact_dir / "adapter_config.json").is_file()
    assert result.metrics["eval_loss"] < result.metrics["eval_loss_before"], result.metrics


def test_bad_demonstrations_and_config_are_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})
        + "\n"
        + json.dumps({"messages": [{"role": "user", "content": "no answer"}]})
        + "\n"
    )
    with pytest.raises(ValueError, match=r"line 2: 'messages' must end with the assistant answer"):
        load_demonstrations(bad)
    with pytest.raises(ValueError, match="eval_fraction"):
        config_from_dict("sft", {"eval_fraction": 1.5})


def test_cli_trains_sft(tiny_base, demos, tmp_path, capsys):
    from rlhf.__main__ import main

    code = main(
        [
            "train",
            "sft",
            "--data",
            str(demos),
            "--base",
            str(tiny_base),
            "--out",
            str(tmp_path / "cli"),
            "--set",
            "max_steps=2",
            "--set",
            "batch_size=8",
            "--set",
            "eval_fraction=0",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.rindex("\n{") + 1 :])
    assert summary["final_step"] == 2 and summary["artifact"].endswith("final")
    assert json.loads((tmp_path / "cli" / "final" / "manifest.json").read_text())["method"] == "sft"
