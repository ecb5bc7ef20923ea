"""Precision "auto" on CPU, and reward training of the top layers only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rlhf.models import load_sequence_classifier
from rlhf.training import config_from_dict, train
from rlhf.training.devices import CPU_BF16_MIN_WEIGHT_BYTES, choose_device, cpu_has_native_bf16


def test_auto_precision_uses_bf16_on_cpu_only_for_big_models_on_bf16_hardware(tmp_path: Path, tiny_base: Path):
    config = config_from_dict("reward", {})
    assert choose_device(config, tiny_base).bf16 is False  # tiny model: float32 whatever the CPU
    big = tmp_path / "big"
    big.mkdir()
    with open(big / "model.safetensors", "wb") as handle:  # sparse: size without the disk use
        handle.truncate(CPU_BF16_MIN_WEIGHT_BYTES + 1)
    assert choose_device(config, big).bf16 is cpu_has_native_bf16()
    assert choose_device(config_from_dict("reward", {"precision": "fp32"}), big).bf16 is False
    assert choose_device(config_from_dict("reward", {"precision": "bf16"}), tiny_base).bf16 is True
    flags = Path("/proc/cpuinfo").read_text()
    assert cpu_has_native_bf16() == (" avx512_bf16" in flags or " amx_bf16" in flags)


def test_train_top_layers_leaves_the_lower_layers_and_embeddings_untouched(tiny_base: Path, small_data: Path, tmp_path: Path):
    result = train(
        "reward",
        small_data,
        tiny_base,
        tmp_path / "run",
        {"train_top_layers": 1, "learning_rate": 1e-3, "max_steps": 2, "eval_fraction": 0.0, "save_steps": 100},
    )
    trained = load_sequence_classifier(result.artifact_dir).state_dict()
    base = load_sequence_classifier(tiny_base).state_dict()
    layers = 1 + max(int(k.split(".")[2]) for k in trained if k.startswith("model.layers."))
    assert layers >= 2
    top = f"model.layers.{layers - 1}."
    for key, value in trained.items():
        if key.startswith("score."):
            continue  # freshly initialised in both loads
        changed = not torch.equal(value, base[key])
        if key.startswith(top):
            if key.endswith("proj.weight"):
                assert changed, f"{key} should have trained"
        elif key.startswith("model.layers.") or key.startswith("model.embed_tokens"):
            assert not changed, f"{key} should be frozen"


def test_train_top_layers_is_validated():
    with pytest.raises(ValueError, match="train_top_layers: must be >= 1"):
        config_from_dict("reward", {"train_top_layers": 0})
    with pytest.raises(ValueError, match="train_top_layers: cannot be combined with use_lora"):
        config_from_dict("reward", {"train_top_layers": 2, "use_lora": True})
