"""Registry: lineage, immutability (service, model and database level), artifact hashes,
promotion and rollback with audit entries, and the verified download."""

from __future__ import annotations

import io
import tarfile

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from feedback_site.core.errors import Conflict, Forbidden
from feedback_site.core.models import AuditEntry
from feedback_site.registry import services
from feedback_site.registry.artifacts import artifact_digest
from feedback_site.registry.models import ModelKind, ModelVersion, VersionImmutable, VersionStatus
from tests.embedded import embedded_json
from tests.evaluation.conftest import eval_project, tiny_models  # noqa: F401

pytestmark = pytest.mark.django_db


def _copy_model(source, target):
    import shutil

    shutil.copytree(source, target)
    return target


def test_lineage_is_recorded_and_versions_cannot_change(eval_project, tiny_models):
    base, child = eval_project["base"], eval_project["child"]
    assert child.parent == base and child.number == 1
    assert child.artifact_sha256 == artifact_digest(tiny_models["child"])
    assert [v.pk for v in services.version_lineage(child)] == [child.pk, base.pk]

    # Model level: save() refuses a change of artifact or lineage ...
    child.artifact_uri = "/somewhere/else"
    with pytest.raises(VersionImmutable, match="artifact_uri"):
        child.save()
    child.refresh_from_db()
    child.metrics = {"loss": 0.0}
    with pytest.raises(VersionImmutable, match="metrics"):
        child.save()
    child.refresh_from_db()
    # ... and the database refuses it when save() is bypassed.
    for change in ({"artifact_uri": "/x"}, {"parent": None}, {"artifact_sha256": "0" * 64}, {"config_hash": "y"}):
        with pytest.raises(IntegrityError, match="immutable"), transaction.atomic():
            ModelVersion.objects.filter(pk=child.pk).update(**change)
    child.refresh_from_db()
    assert child.artifact_uri == str(tiny_models["child"]) and child.parent_id == base.pk
    # Status is the one field that moves (draft -> ready -> archived).
    ModelVersion.objects.filter(pk=child.pk).update(status=VersionStatus.ARCHIVED)


def test_a_changed_artifact_is_refused_on_read_and_download(eval_project, tiny_models, tmp_path, site_admin, client):
    project = eval_project["project"]
    folder = _copy_model(tiny_models["child"], tmp_path / "copy")
    version = services.version_register(
        project=project, kind=ModelKind.POLICY, name="copy", artifact_uri=str(folder), base_model="b", parent=eval_project["base"]
    )
    assert services.version_artifact_path(version) == folder
    (folder / "config.json").write_text((folder / "config.json").read_text() + " ")
    with pytest.raises(Conflict, match="changed since registration"):
        services.version_artifact_path(version)
    client.force_login(site_admin)
    response = client.get(reverse("api-version-download", args=[version.pk]))
    assert response.status_code == 409 and response.json()["error"] == "artifact_changed"


def test_promote_and_roll_back_move_the_pointer_and_write_audit_entries(eval_project, site_admin, ml_staff, annotator, make_user):
    project, base, child = eval_project["project"], eval_project["base"], eval_project["child"]
    from feedback_site.projects.models import Membership

    Membership.objects.create(project=project, user=ml_staff, role="ml_staff")
    Membership.objects.create(project=project, user=annotator, role="annotator")
    third = services.version_register(
        project=project, kind=ModelKind.POLICY, name="third", artifact_uri="/none", base_model="b", parent=child
    )

    with pytest.raises(Forbidden):
        services.version_promote(project, child, annotator)
    services.version_promote(project, child, ml_staff, reason="better win-rate")
    project.refresh_from_db()
    assert project.current_policy == child
    child.refresh_from_db()
    assert child.status == VersionStatus.READY
    # Promoting the current version again is a no-op.
    services.version_promote(project, child, ml_staff)
    services.version_promote(project, third, ml_staff)
    project.refresh_from_db()
    assert project.current_policy == third

    services.version_rollback(project, ml_staff)
    project.refresh_from_db()
    assert project.current_policy == child
    services.version_rollback(project, ml_staff, reason="regression")
    project.refresh_from_db()
    assert project.current_policy == base
    with pytest.raises(Conflict, match="no earlier promoted policy"):
        services.version_rollback(project, ml_staff)
    with pytest.raises(Exception, match="reward model"):
        services.version_promote(project, eval_project["rm1"], ml_staff)

    entries = list(AuditEntry.objects.filter(project=project, action__startswith="version.").order_by("id"))
    assert [(e.action, e.details["from_version"], e.details["to_version"]) for e in entries] == [
        ("version.promote", base.pk, child.pk),
        ("version.promote", child.pk, third.pk),
        ("version.rollback", third.pk, child.pk),
        ("version.rollback", child.pk, base.pk),
    ]
    assert all(e.actor == ml_staff for e in entries)
    assert entries[0].details["reason"] == "better win-rate"


def test_promote_and_rollback_api_and_pages(eval_project, site_admin, client):
    project, base, child = eval_project["project"], eval_project["base"], eval_project["child"]
    client.force_login(site_admin)
    response = client.post(reverse("api-version-promote", args=[child.pk]), {"reason": "api"}, content_type="application/json")
    assert response.status_code == 200 and response.json()["to_version_id"] == child.pk
    listing = client.get(reverse("api-versions", args=[project.pk])).json()
    assert [v["is_current"] for v in listing] == [True if v["id"] == child.pk else False for v in listing]
    detail = client.get(reverse("api-version", args=[child.pk])).json()
    assert [v["id"] for v in detail["lineage"]] == [child.pk, base.pk]
    page = client.get(reverse("project-versions", args=[project.pk]))
    assert page.status_code == 200 and b'id="lineage"' in page.content and b"child" in page.content
    lineage = embedded_json(page.content, "lineage-data")
    versions = list(ModelVersion.objects.filter(project=project).order_by("created_at", "id"))
    assert lineage["kind"] == "lineage" and lineage["lanes"] == ["reward models", "policies"]
    assert [(n["x"], n["label"], n["name"]) for n in lineage["nodes"]] == [
        (i, f"{'P' if v.kind == 'policy' else 'R'}{v.number}", v.name) for i, v in enumerate(versions)
    ]
    index = {v.pk: i for i, v in enumerate(versions)}
    assert sorted(map(tuple, lineage["edges"])) == sorted((index[v.parent_id], index[v.pk]) for v in versions if v.parent_id)
    assert [n["group"] for n in lineage["nodes"] if n["x"] == index[child.pk]] == ["current"]
    response = client.post(reverse("project-version-rollback", args=[project.pk]))
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.current_policy == base
    response = client.post(reverse("api-version-rollback", args=[project.pk]), {}, content_type="application/json")
    assert response.status_code == 409


def test_download_is_a_tar_that_transformers_loads(eval_project, tiny_models, site_admin, client, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    child = eval_project["child"]
    client.force_login(site_admin)
    response = client.get(reverse("api-version-download", args=[child.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/x-tar"
    assert response["X-Artifact-SHA256"] == child.artifact_sha256
    data = b"".join(response.streaming_content)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        names = archive.getnames()
        archive.extractall(tmp_path / "out", filter="data")
    folder = tmp_path / "out" / f"project{child.project_id}-policy-v1"
    assert f"project{child.project_id}-policy-v1/REGISTRY.json" in names
    record = __import__("json").loads((folder / "REGISTRY.json").read_text())
    assert record["version_id"] == child.pk and record["parent_id"] == eval_project["base"].pk
    assert record["artifact_sha256"] == child.artifact_sha256
    (folder / "REGISTRY.json").unlink()
    assert artifact_digest(folder) == child.artifact_sha256  # byte-identical artifact
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.num_hidden_layers == 2 and tokenizer.eos_token
