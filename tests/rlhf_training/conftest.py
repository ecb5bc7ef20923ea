"""Fixtures for the rlhf training tests: a tiny random policy, toy preferences with a known answer.

Everything runs on CPU with models of ~100k parameters, so each training run takes seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

# No model hub is reachable from CI; fail fast instead of waiting on network timeouts.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("RLHF_DEVICE", "cpu")  # same numbers on every machine, GPU or not

import pytest
import torch

from rlhf.models import make_tiny_model

from .helpers import write_toy_preferences


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    # Tiny models gain nothing from intra-op threads, and on a shared 2-core CI box spinning
    # worker threads made each step ~10x slower. Results do not depend on it (we compare runs
    # made in the same process).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-base", seed=0)


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_preferences(tmp_path_factory.mktemp("data") / "toy.jsonl", count=120, seed=0)


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fewer pairs, for tests about mechanics (resume, cancel, failures) rather than learning."""
    return write_toy_preferences(tmp_path_factory.mktemp("data") / "small.jsonl", count=48, seed=1)


@pytest.fixture(scope="session")
def reward_model(tiny_base: Path, toy_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """A reward model trained on the toy preferences (full fine-tune); shared by several tests."""
    from rlhf.training import train

    out = tmp_path_factory.mktemp("runs") / "reward-full"
    return train(
        "reward",
        toy_data,
        tiny_base,
        out,
        {"learning_rate": 1e-3, "max_steps": 30, "batch_size": 8, "eval_fraction": 0.25, "save_steps": 100},
    )
