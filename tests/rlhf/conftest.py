"""Fixtures for the Django-free `rlhf` tests: a tiny random policy and, for slow tests, SmolLM2.

Run with `python -m pytest tests/rlhf -p no:django`: nothing here needs the Django project, a
database or a broker. Models are forced onto the CPU in float32 so that determinism checks
compare bit-identical arithmetic on every machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rlhf.models import BUILTIN_SMOLLM2, load_policy, make_tiny_model, resolve_model_path


@pytest.fixture(autouse=True)
def _isolated_artifacts() -> Iterator[None]:
    """Replaces the site-wide autouse fixture of `tests/conftest.py`.

    That one points Django's `settings.ARTIFACTS_DIR` at a temp folder and so needs
    pytest-django's `settings` fixture; rlhf tests get their folders explicitly instead and must
    run without Django installed or configured.
    """
    yield


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Run each test's torch work on one thread, then restore the previous setting.

    Tiny models gain nothing from intra-op parallelism, and on a shared CI box OpenMP threads
    spinning against other processes made these tests 10-20x slower.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SmolLM2-shaped model (byte-level tokenizer), built once per session."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def tiny_policy(tiny_model_path: Path) -> tuple[Any, Any]:
    """(model, tokenizer) of the tiny model on CPU; tests must not modify it."""
    return load_policy(tiny_model_path, device="cpu")


@pytest.fixture(scope="session")
def artifacts_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Artifact store for builtin conversions.

    Set `RLHF_TEST_CACHE_DIR` to keep the converted SmolLM2 between sessions (converting
    takes ~35 s on a laptop CPU); by default it lives in this session's temp folder.
    """
    kept = os.environ.get("RLHF_TEST_CACHE_DIR")
    if kept:
        path = Path(kept)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def smollm2_path(artifacts_cache_dir: Path) -> Path:
    """The builtin SmolLM2-135M-Instruct converted to safetensors (slow the first time)."""
    return resolve_model_path(BUILTIN_SMOLLM2, artifacts_cache_dir)
