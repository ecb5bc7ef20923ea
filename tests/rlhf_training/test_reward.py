"""Reward model (Bradley–Terry, TRL RewardTrainer): learns a known preference, full and LoRA."""

from __future__ import annotations

import json

import pytest

from rlhf.progress import RecordingControl
from rlhf.scoring import RewardModelScorer, evaluate_pairs, score
from rlhf.training import train
from rlhf.training.data import load_preference_records, split_holdout

from .helpers import train_with_and_without_shared_prefix


def test_full_reward_model_separates_the_toy_preference(reward_model, toy_data, tiny_base):
    metrics = reward_model.metrics
    assert metrics["eval_accuracy"] > 0.9
    assert metrics["eval_margin"] > 0
    assert 0.0 <= metrics["eval_tie_fraction"] < 0.1

    # Independently of the training code's own evaluation: score the held-out pairs again.
    _, holdout = split_holdout(load_preference_records(toy_data), 0.25, seed=0)
    chosen = score(reward_model.artifact_dir, [r["prompt"] + r["chosen"] for r in holdout])
    rejected = score(reward_model.artifact_dir, [r["prompt"] + r["rejected"] for r in holdout])
    accuracy = sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(holdout)
    assert accuracy > 0.9
    assert abs(accuracy - metrics["eval_accuracy"]) < 1e-9

    manifest = json.loads((reward_model.artifact_dir / "manifest.json").read_text())
    assert manifest["method"] == "reward" and manifest["model_kind"] == "reward"
    assert manifest["artifact_type"] == "full" and manifest["base_model"] == str(tiny_base)
    assert manifest["config_hash"] == reward_model.config_hash and len(manifest["data_sha256"]) == 64
    assert manifest["code_version"] and manifest["final_step"] == 30
    assert (reward_model.artifact_dir / "model.safetensors").is_file()
    assert not (reward_model.artifact_dir.parent / "checkpoints").exists()  # removed after success


def test_lora_reward_model_saves_only_an_adapter(tiny_base, toy_data, tmp_path):
    control = RecordingControl()
    result = train(
        "reward",
        toy_data,
        tiny_base,
        tmp_path / "run",
        {
            "learning_rate": 3e-3,
            "max_steps": 15,
            "batch_size": 8,
            "eval_fraction": 0.25,
            "use_lora": True,
            "lora_r": 8,
            "lora_alpha": 16,
            "save_steps": 100,
        },
        control=control,
    )
    files = {path.name for path in result.artifact_dir.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "manifest.json", "tokenizer.json"} <= files
    assert "model.safetensors" not in files
    assert result.is_adapter and result.manifest["base_model"] == str(tiny_base)
    adapter_config = json.loads((result.artifact_dir / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(tiny_base)
    assert "score" in adapter_config["modules_to_save"]  # the new head trains in full
    assert result.metrics["eval_accuracy"] > 0.9

    # The adapter artifact loads on its own (base found through the manifest) and scores the same.
    _, holdout = split_holdout(load_preference_records(toy_data), 0.25, seed=0)
    held = evaluate_pairs(RewardModelScorer.load(result.artifact_dir, device="cpu"), holdout)
    assert abs(held["accuracy"] - result.metrics["eval_accuracy"]) < 1e-9

    # Live progress carried the reward metrics every step.
    steps = [step for step, total, _ in control.reports]
    assert steps == list(range(1, 16)) and all(total == 15 for _, total, _ in control.reports)
    last = control.reports[-1][2]
    assert {"loss", "learning_rate", "accuracy", "margin", "tie_fraction", "tokens_per_s"} <= set(last)


def test_scorer_is_a_reward_function_in_trl_convention(reward_model):
    scorer = RewardModelScorer.load(reward_model.artifact_dir, device="cpu")
    prompts = [[{"role": "user", "content": "Tell me about tea."}]] * 2
    completions = [[{"role": "assistant", "content": "good kind calm"}], [{"role": "assistant", "content": "12 845 3"}]]
    good, bad = scorer(prompts=prompts, completions=completions, completion_ids=[[], []], trainer_state=None)
    assert good > bad


def test_long_pairs_keep_their_end_instead_of_being_dropped(tiny_base, toy_data, tmp_path):
    control = RecordingControl()
    result = train(
        "reward",
        toy_data,
        tiny_base,
        tmp_path / "run",
        {"max_steps": 1, "batch_size": 4, "max_length": 40, "eval_fraction": 0.0, "save_steps": 100},
        control=control,
    )
    assert result.manifest["train_pairs"] == 120
    assert any("exceed max_length=40; their last tokens are kept" in line for line in control.lines)


@pytest.mark.parametrize("use_lora", [False, True])
def test_shared_prefix_trains_to_the_same_reward_model(tiny_base, toy_data, tmp_path, monkeypatch, use_lora):
    """`shared_prefix` (default) runs each pair's shared start once; the run ends where the plain one ends."""
    config = {
        "learning_rate": 1e-3,
        "max_steps": 4,
        "batch_size": 8,
        "eval_fraction": 0.25,
        "save_steps": 100,
        "use_lora": use_lora,
        "precision": "fp32",
    }
    shared, calls, plain, plain_calls = train_with_and_without_shared_prefix(
        monkeypatch, "reward", "_scoring_layout", toy_data, tiny_base, tmp_path, config
    )
    assert calls and all(calls[:4])  # the four training batches took the shared path
    assert not plain_calls
    for key in ("loss", "eval_accuracy", "eval_margin"):
        assert shared.metrics[key] == pytest.approx(plain.metrics[key], rel=1e-3, abs=1e-4), key
