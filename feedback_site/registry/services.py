"""Registering model versions. A version is created once and never edited; promotion moves the
project's pointer, it does not change the version."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from feedback_site.projects.models import Project
from feedback_site.registry.models import ModelKind, ModelVersion, VersionStatus


@transaction.atomic
def version_register(
    *,
    project: Project,
    kind: str,
    name: str,
    artifact_uri: str,
    base_model: str,
    parent: ModelVersion | None = None,
    snapshot=None,
    config_hash: str = "",
    code_version: str = "",
    metrics: dict | None = None,
    status: str = VersionStatus.DRAFT,
    created_by=None,
) -> ModelVersion:
    # Locking the project row serialises numbering per project.
    Project.objects.select_for_update().filter(pk=project.pk).first()
    last = ModelVersion.objects.filter(project=project, kind=kind).aggregate(n=Max("number"))["n"]
    return ModelVersion.objects.create(
        project=project,
        kind=kind,
        number=0 if last is None else last + 1,
        name=name,
        artifact_uri=artifact_uri,
        base_model=base_model,
        parent=parent,
        snapshot=snapshot,
        config_hash=config_hash,
        code_version=code_version,
        metrics=metrics or {},
        status=status,
        created_by=created_by,
    )


@transaction.atomic
def base_policy_register(*, project: Project, artifact_uri: str | None = None, name: str | None = None, created_by=None) -> ModelVersion:
    """Version 0 of a project's policy: the base model it starts from (SmolLM2-135M-Instruct by
    default, any local model folder otherwise). The web process only records the URI; a worker
    resolves it to weights."""
    uri = artifact_uri or settings.DEFAULT_POLICY_URI
    version = version_register(
        project=project,
        kind=ModelKind.POLICY,
        name=name or (settings.DEFAULT_POLICY_NAME if uri == settings.DEFAULT_POLICY_URI else uri.rstrip("/").split("/")[-1]),
        artifact_uri=uri,
        base_model=uri,
        status=VersionStatus.READY,
        created_by=created_by,
    )
    project.current_policy = version
    project.save(update_fields=["current_policy"])
    return version
