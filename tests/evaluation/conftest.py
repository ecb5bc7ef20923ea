"""Tiny real models for evaluation and registry tests: two policies (base and a child with other
weights) and two reward models (random scalar heads on the tiny backbone)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workers.conftest import redis_broker, start_worker  # noqa: F401  (fixtures for the worker test)


def _reward_model(policy_dir: Path, out_dir: Path, seed: int) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(policy_dir, num_labels=1, dtype=torch.float32)
        # A clearly non-zero head so rewards differ between answers.
        torch.nn.init.normal_(model.score.weight, std=1.0)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    model.config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    from rlhf.models import make_tiny_model

    root = tmp_path_factory.mktemp("eval-models")
    base = make_tiny_model(root / "base", seed=0)
    child = make_tiny_model(root / "child", seed=1)
    return {
        "base": base,
        "child": child,
        "rm1": _reward_model(base, root / "rm1", seed=2),
        "rm2": _reward_model(base, root / "rm2", seed=3),
    }


@pytest.fixture
def eval_project(site_admin, tiny_models, monkeypatch):
    """A project on the tiny base policy, a child policy v1, reward models v0 and v1, and
    three evaluation prompts. Returns a dict of the objects."""
    from feedback_site.evaluation import services as evaluation_services
    from feedback_site.registry.models import ModelKind
    from feedback_site.registry.services import project_create, version_register

    project = project_create(creator=site_admin, name="Eval", base_policy_uri=str(tiny_models["base"]))
    base = project.current_policy
    child = version_register(
        project=project,
        kind=ModelKind.POLICY,
        name="child",
        artifact_uri=str(tiny_models["child"]),
        base_model=str(tiny_models["base"]),
        parent=base,
        config_hash="c" * 64,
        code_version="test",
    )
    rm1 = version_register(
        project=project, kind=ModelKind.REWARD, name="rm one", artifact_uri=str(tiny_models["rm1"]), base_model=str(tiny_models["base"])
    )
    rm2 = version_register(
        project=project, kind=ModelKind.REWARD, name="rm two", artifact_uri=str(tiny_models["rm2"]), base_model=str(tiny_models["base"])
    )
    evaluation_services.eval_prompts_import(
        project=project,
        actor=site_admin,
        data=b'{"prompt": "Name a colour."}\n{"prompt": "Say hello.", "system_prompt": "Be brief."}\n{"prompt": "Count to three."}\n',
    )
    return {"project": project, "base": base, "child": child, "rm1": rm1, "rm2": rm2}
