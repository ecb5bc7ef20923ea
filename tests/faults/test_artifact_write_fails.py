"""Artifact writes that fail: a read-only artifact folder and a full one.

A training run (tiny model, the real training job in-process) must fail with a message naming the
problem, register no version and leave no `final/` artifact; snapshot creation must answer a
clear 503 and record no snapshot. The folders are real: a tmpfs mounted read-only, or one so
small it fills up (root, as in CI containers), or a chmod 555 folder for a non-root user.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from feedback_site.registry.models import ModelVersion
from feedback_site.snapshots.models import Snapshot
from feedback_site.training.models import TrainingRun, TrainingStatus

pytestmark = pytest.mark.django_db


def _mount_tmpfs(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True).returncode == 0


@pytest.fixture
def broken_folder(tmp_path):
    """make(kind) -> a folder where writes fail: kind 'readonly' or 'full'."""
    mounted: list[Path] = []

    def make(kind: str) -> Path:
        folder = tmp_path / f"broken-{kind}"
        if kind == "readonly":
            if os.geteuid() != 0:
                folder.mkdir()
                folder.chmod(0o555)
                return folder
            if _mount_tmpfs(folder, "ro,size=1m"):
                mounted.append(folder)
                return folder
        elif kind == "full" and os.geteuid() == 0 and _mount_tmpfs(folder, "size=64k"):
            mounted.append(folder)
            (folder / "filler").write_bytes(b"\0" * 60_000)
            return folder
        pytest.skip(f"cannot make a {kind} folder here (needs root with mount, or non-root for chmod)")

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def tiny_policy(tmp_path_factory):
    from rlhf.models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture
def toy(site_admin, tiny_policy, settings):
    from feedback_site.annotation.imports import import_file
    from feedback_site.registry.services import project_create
    from feedback_site.snapshots.services import snapshot_create

    project = project_create(creator=site_admin, name="Toy", base_policy_uri=str(tiny_policy))
    lines = [{"prompt": f"Topic {i}?", "response_a": f"good answer {i}", "response_b": f"bad {i}", "preferred": "a"} for i in range(8)]
    import_file(project=project, actor=site_admin, kind="pairs", filename="t.jsonl", data="\n".join(json.dumps(x) for x in lines).encode())
    snapshot, _ = snapshot_create(project=project, actor=site_admin)
    return project, snapshot


def _launch(project, snapshot, site_admin):
    from feedback_site.training import services

    # The broker is not what this test is about; the job runs in this process below.
    services_enqueue = services.enqueue
    services.enqueue = lambda *args, **options: "in-process"
    try:
        run, _ = services.training_launch(
            project=project,
            actor=site_admin,
            method="reward",
            snapshot=snapshot,
            config={"max_steps": 4, "batch_size": 4, "save_steps": 2, "max_length": 128},
        )
    finally:
        services.enqueue = services_enqueue
    return run


@pytest.mark.parametrize("kind, phrase", [("readonly", "Read-only file system"), ("full", "No space left on device")])
def test_training_into_a_broken_folder_fails_clearly_and_registers_nothing(kind, phrase, toy, site_admin, settings, broken_folder):
    from workers import training_job

    if kind == "readonly" and os.geteuid() != 0:
        phrase = "Permission denied"
    project, snapshot = toy
    run = _launch(project, snapshot, site_admin)
    settings.ARTIFACTS_DIR = broken_folder(kind)
    training_job.run_training(run.pk)
    run.refresh_from_db()
    assert run.status == TrainingStatus.FAILED
    assert phrase in run.message, run.message
    assert run.output_version is None
    assert list(ModelVersion.objects.filter(project=project).values_list("number", flat=True)) == [0]
    run_folder = training_job.run_dir(run.pk)
    assert not (run_folder / "final").exists()
    assert not list(run_folder.glob("_work/final.tmp*")) if run_folder.exists() else True


@pytest.mark.parametrize("kind, phrase", [("readonly", "is read-only"), ("full", "is full")])
def test_snapshot_into_a_broken_folder_is_a_clear_503(kind, phrase, toy, site_admin, settings, broken_folder, add_member, make_user):
    project, first = toy
    from feedback_site.annotation.models import Pair

    # Change the data so a new snapshot would be different from the first.
    Pair.objects.filter(project=project).update(prelabel="b")
    if kind == "readonly" and os.geteuid() != 0:
        phrase = "is not writable"
    settings.ARTIFACTS_DIR = broken_folder(kind)
    client = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=site_admin).key}")
    response = client.post(f"/api/v1/projects/{project.pk}/snapshots/", data=json.dumps({}), content_type="application/json")
    assert response.status_code == 503, response.content
    body = response.json()
    assert body["error"] == "storage_unavailable" and phrase in body["detail"] and "Nothing was saved" in body["detail"]
    assert list(Snapshot.objects.filter(project=project)) == [first]
    # No partial snapshot: no file, no `.building-*` or content-hash folder (the empty per-project
    # parent folder may exist).
    leftovers = [
        p for p in Path(settings.ARTIFACTS_DIR).rglob("*") if p.name != "filler" and (p.is_file() or p.parent.name.startswith("project-"))
    ]
    assert leftovers == [], leftovers
    assert not TrainingRun.objects.exists()


def test_snapshot_page_into_a_read_only_folder_is_a_clear_503(toy, site_admin, settings, broken_folder):
    project, first = toy
    from feedback_site.annotation.models import Pair

    Pair.objects.filter(project=project).update(prelabel="b")
    settings.ARTIFACTS_DIR = broken_folder("readonly")
    client = Client()
    client.force_login(site_admin)
    response = client.post(f"/projects/{project.pk}/snapshots/", {"aggregation": "majority"})
    assert response.status_code == 503
    assert b"Storage unavailable" in response.content and b"Nothing was saved" in response.content
    assert list(Snapshot.objects.filter(project=project)) == [first]
