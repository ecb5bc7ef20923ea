"""A real playground worker (no max-tasks-per-child, so versions stay loaded), tiny policies
(a full model and a LoRA adapter on it), and the browser fixtures for the page test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backends import database_url
from tests.browser.conftest import _fast_password_hashing, login, page  # noqa: F401  (fixtures)
from tests.workers.conftest import REPO, WorkerProcess, redis_broker  # noqa: F401  (fixture)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """A tiny random policy and a LoRA adapter trained-looking on it (random non-zero B)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from rlhf.models import make_tiny_model

    root = tmp_path_factory.mktemp("playground-models")
    base = make_tiny_model(root / "base", seed=0)
    torch.manual_seed(1)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False),
    )
    model.peft_config["default"].base_model_name_or_path = str(base)
    adapter = root / "adapter"
    model.save_pretrained(adapter)
    return {"base": base, "adapter": adapter}


@pytest.fixture
def start_playground_worker(settings, redis_broker, tmp_path):  # noqa: F811
    started: list[WorkerProcess] = []

    def start(name: str = "pg") -> WorkerProcess:
        db = settings.DATABASES["default"]
        env = {
            **os.environ,
            "DATABASE_URL": database_url(db),
            "CELERY_BROKER_URL": redis_broker,
            "FEEDBACK_ARTIFACTS_DIR": str(settings.ARTIFACTS_DIR),
            "PYTHONUNBUFFERED": "1",
            "RLHF_DEVICE": "cpu",
            "OMP_NUM_THREADS": "1",
            "PLAYGROUND_TORCH_THREADS": "1",
        }
        log = tmp_path / f"worker-{name}.log"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.celery_app",
                "worker",
                "-Q",
                "playground",
                "-n",
                f"{name}@%h",
                "--concurrency",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            cwd=REPO,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = WorkerProcess(process, log)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill(signal.SIGTERM if worker.process.poll() is None else signal.SIGKILL)


@pytest.fixture
def playground_project(site_admin, tiny_models):
    from feedback_site.registry.models import ModelKind, ModelVersion
    from feedback_site.registry.services import project_create

    project = project_create(creator=site_admin, name="Playground", overlap=1, base_policy_uri=str(tiny_models["base"]))
    lora = ModelVersion.objects.create(
        project=project,
        kind=ModelKind.POLICY,
        number=1,
        name="LoRA round 1",
        artifact_uri=str(tiny_models["adapter"]),
        base_model=str(tiny_models["base"]),
        parent=project.current_policy,
    )
    return project, project.current_policy, lora
