"""Workers find a version's weights one way (`registry.services.version_model_dir`), hash-checked.

A policy or reward folder that changed after registration (a file edited, added or removed)
must never be trained from, evaluated, served or scored; a builtin version resolves to its
converted folder.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from feedback_site.core.errors import Conflict
from feedback_site.registry import services as registry_services
from feedback_site.registry.services import version_model_dir, version_register

WORKERS = Path(__file__).resolve().parents[2] / "workers"


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    return folder


@pytest.fixture
def version(project, artifact):
    return version_register(project=project, kind="policy", name="v", artifact_uri=str(artifact), base_model="tiny")


@pytest.mark.django_db
def test_an_unchanged_artifact_is_returned_and_verified_once(version, artifact, monkeypatch) -> None:
    assert version.artifact_sha256
    calls = []
    real = registry_services.artifacts.verify_artifact
    monkeypatch.setattr(registry_services.artifacts, "verify_artifact", lambda *a: calls.append(a) or real(*a))
    registry_services._VERIFIED.clear()
    assert version_model_dir(version) == artifact
    assert version_model_dir(version) == artifact
    assert len(calls) == 1  # the second call saw the same sizes and mtimes: no re-hash


@pytest.mark.django_db
@pytest.mark.parametrize("change", ["edit", "add", "remove"])
def test_a_changed_artifact_is_refused_even_after_it_verified(version, artifact, change) -> None:
    version_model_dir(version)  # verified and remembered
    if change == "edit":
        (artifact / "model.safetensors").write_bytes(b"\x01" * 64)
    elif change == "add":
        (artifact / "extra.bin").write_bytes(b"x")
    else:
        (artifact / "config.json").unlink()
    with pytest.raises(Conflict) as raised:
        version_model_dir(version)
    assert raised.value.code == "artifact_changed"
    assert version_model_dir(version, verify=False) == artifact  # an explicit opt-out still finds it


@pytest.mark.django_db
def test_a_builtin_version_resolves_to_its_converted_folder(project, settings, tmp_path) -> None:
    from rlhf.models import BUILTIN_SMOLLM2

    settings.ARTIFACTS_DIR = str(tmp_path / "store")
    builtin = project.current_policy
    assert builtin.artifact_uri == BUILTIN_SMOLLM2
    folder = version_model_dir(builtin)
    assert (folder / "config.json").is_file() and Path(settings.ARTIFACTS_DIR) in folder.parents


@pytest.mark.django_db
def test_the_reward_scoring_task_refuses_a_changed_reward_model(project, make_pairs, artifact) -> None:
    from workers.quality_tasks import run_score_pairs

    make_pairs(project, 2, overlap=1)
    reward = version_register(project=project, kind="reward", name="rm", artifact_uri=str(artifact), base_model="tiny")
    (artifact / "model.safetensors").write_bytes(b"\x02" * 64)
    with pytest.raises(Conflict):
        run_score_pairs(project.pk, reward.pk)


def test_no_worker_finds_weights_another_way() -> None:
    offenders = []
    for path in sorted(WORKERS.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Name | ast.Attribute):
                name = node.id if isinstance(node, ast.Name) else node.attr
                if name in {"resolve_model_path", "version_artifact_path"}:
                    offenders.append(f"{path.name}:{node.lineno} uses {name}")
    assert not offenders, "workers must use registry.services.version_model_dir:\n" + "\n".join(offenders)
