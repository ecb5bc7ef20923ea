"""DPO (TRL DPOTrainer): raises the chosen-minus-rejected margin on held-out pairs, full and LoRA."""

from __future__ import annotations

import json

import pytest
import torch

from rlhf.models import load_causal_lm, load_tokenizer
from rlhf.progress import RecordingControl
from rlhf.training import train
from rlhf.training.data import load_preference_records, split_holdout

from .helpers import train_with_and_without_shared_prefix


@torch.no_grad()
def preference_margin(model_dir, tokenizer_dir, records) -> float:
    """Mean log π(chosen|x) - log π(rejected|x) over `records` (answer tokens only)."""
    model = load_causal_lm(model_dir).eval()
    tokenizer = load_tokenizer(tokenizer_dir)

    def answer_logprob(prompt, answer) -> float:
        context = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
        full = tokenizer.apply_chat_template(prompt + answer, tokenize=True, return_dict=True)["input_ids"]
        ids = torch.tensor([full])
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        targets = ids[0, 1:]
        return logprobs[torch.arange(len(targets)), targets][len(context) - 1 :].sum().item()

    margins = [answer_logprob(r["prompt"], r["chosen"]) - answer_logprob(r["prompt"], r["rejected"]) for r in records]
    return sum(margins) / len(margins)


def test_full_dpo_raises_the_held_out_margin(tiny_base, toy_data, tmp_path):
    result = train(
        "dpo",
        toy_data,
        tiny_base,
        tmp_path / "run",
        {"learning_rate": 5e-4, "max_steps": 12, "batch_size": 8, "eval_fraction": 0.25, "save_steps": 100},
    )
    assert result.metrics["eval_rewards/margins"] > 0.5
    assert result.metrics["eval_rewards/accuracies"] > 0.9
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "loss"):
        assert key in result.metrics

    _, holdout = split_holdout(load_preference_records(toy_data), 0.25, seed=0)
    before = preference_margin(tiny_base, tiny_base, holdout)
    after = preference_margin(result.artifact_dir, result.artifact_dir, holdout)
    assert after > before + 5.0  # nats; the trained policy clearly prefers the chosen kind of answer
    assert not result.is_adapter and (result.artifact_dir / "model.safetensors").is_file()


def test_lora_dpo_saves_an_adapter_whose_reference_is_the_base(tiny_base, toy_data, tmp_path):
    result = train(
        "dpo",
        toy_data,
        tiny_base,
        tmp_path / "run",
        {
            "learning_rate": 3e-3,
            "max_steps": 10,
            "batch_size": 8,
            "eval_fraction": 0.25,
            "use_lora": True,
            "loss_type": "ipo",
            "save_steps": 100,
        },
    )
    files = {path.name for path in result.artifact_dir.iterdir()}
    assert "adapter_model.safetensors" in files and "model.safetensors" not in files
    adapter_config = json.loads((result.artifact_dir / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(tiny_base)
    assert result.manifest["config"]["loss_type"] == ["ipo"]
    assert result.metrics["eval_rewards/margins"] > 0

    _, holdout = split_holdout(load_preference_records(toy_data), 0.25, seed=0)
    assert preference_margin(result.artifact_dir, tiny_base, holdout) > preference_margin(tiny_base, tiny_base, holdout)


def test_dpo_from_a_lora_parent_uses_the_merged_parent(tiny_base, toy_data, tmp_path):
    """Round 2 starts from round 1's adapter: policy and reference are base + adapter 1, merged."""
    first = train(
        "dpo",
        toy_data,
        tiny_base,
        tmp_path / "r1",
        {"learning_rate": 3e-3, "max_steps": 3, "batch_size": 8, "use_lora": True, "save_steps": 100},
    )
    control = RecordingControl()
    second = train(
        "dpo",
        toy_data,
        first.artifact_dir,
        tmp_path / "r2",
        {"learning_rate": 3e-3, "max_steps": 2, "batch_size": 8, "use_lora": True, "save_steps": 100},
        control=control,
    )
    assert second.manifest["base_model"] == str(first.artifact_dir)
    # Step 1's loss is computed before any update, with policy == reference == the merged parent,
    # so the implicit rewards are exactly 0 (they would not be if the reference were tiny_base).
    first_step = control.reports[0][2]
    assert first_step["rewards/chosen"] == pytest.approx(0.0, abs=1e-5)
    assert first_step["rewards/margins"] == pytest.approx(0.0, abs=1e-5)
    # The artifact loads through the chain tiny_base -> adapter 1 -> adapter 2.
    model = load_causal_lm(second.artifact_dir)
    assert model.config.vocab_size == load_causal_lm(tiny_base).config.vocab_size


@pytest.mark.parametrize("use_lora", [False, True])
def test_shared_prefix_trains_to_the_same_policy_as_trl_forward(tiny_base, toy_data, tmp_path, monkeypatch, use_lora):
    """`shared_prefix` (default) runs each prompt once; the run ends where TRL's forward ends."""
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
        monkeypatch, "dpo", "_pair_layout", toy_data, tiny_base, tmp_path, config
    )
    assert calls and all(calls)  # every training and held-out batch took the shared path
    assert not plain_calls
    for key in ("loss", "rewards/margins", "eval_rewards/margins", "eval_rewards/accuracies"):
        assert shared.metrics[key] == pytest.approx(plain.metrics[key], rel=1e-3, abs=1e-4), key
    assert shared.metrics["eval_rewards/margins"] > 0
