"""Registering, promoting, rolling back and serving model versions; creating a project with its
base policy.

A version is created once and never edited (see `registry.models`); promotion moves the
project's current-policy pointer, it does not change the version beyond marking it ready. Every
pointer move is logged (`PolicyPointerChange`) and audited (`core.audit`), in the same
transaction as the move.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from feedback_site.core.audit import audit_record
from feedback_site.core.errors import Conflict, Invalid, NotFound
from feedback_site.projects import services as projects_services
from feedback_site.projects.models import Project
from feedback_site.projects.permissions import STAFF_ROLES, require_role
from feedback_site.registry import artifacts
from feedback_site.registry.models import ModelKind, ModelVersion, PointerAction, PolicyPointerChange, VersionStatus


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
    sha = ""
    if artifacts.is_local_artifact(artifact_uri) and Path(artifact_uri).is_dir():
        sha = artifacts.artifact_digest(artifact_uri)
    return ModelVersion.objects.create(
        artifact_sha256=sha,
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


@transaction.atomic
def project_create(*, creator, base_policy_uri: str | None = None, **fields) -> Project:
    """A new project ready to work in: the project, its creator as admin and its first guidelines
    (`projects.services.project_create`, which takes the other keyword arguments) and version 0
    of its policy, the base model `base_policy_uri` (the default policy when None), as the
    current policy. One transaction: a bad field or URI leaves nothing behind."""
    project = projects_services.project_create(creator=creator, **fields)
    base_policy_register(project=project, artifact_uri=base_policy_uri, created_by=creator)
    return project


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def version_get(*, version_id: int, actor) -> ModelVersion:
    version = ModelVersion.objects.select_related("project", "parent", "snapshot", "created_by").filter(pk=version_id).first()
    if version is None:
        raise NotFound("No such model version.")
    require_role(actor, version.project_id, STAFF_ROLES)
    return version


def version_lineage(version: ModelVersion) -> list[ModelVersion]:
    """The version, its parent, the parent's parent ... down to the base (at most 1000 steps)."""
    chain = [version]
    seen = {version.pk}
    while chain[-1].parent_id is not None and len(chain) < 1000:
        parent = ModelVersion.objects.select_related("snapshot").get(pk=chain[-1].parent_id)
        if parent.pk in seen:
            break
        seen.add(parent.pk)
        chain.append(parent)
    return chain


def version_artifact_path(version: ModelVersion, *, verify: bool = True) -> Path:
    """The local folder of a version's artifact, its content hash checked unless `verify=False`.

    builtin: URIs have no folder here (a worker converts them); they are refused with a clear
    message. Raises `Conflict` when the artifact changed since registration.
    """
    uri = version.artifact_uri
    if not artifacts.is_local_artifact(uri):
        raise Invalid(f"{version.label} is the builtin model {uri}; it has no artifact folder to download", code="builtin")
    folder = Path(uri)
    if not folder.is_dir():
        raise NotFound(f"the artifact folder of {version.label} is missing ({uri})")
    if verify:
        _verify(folder, version)
    return folder


def _verify(folder: Path, version: ModelVersion) -> None:
    try:
        artifacts.verify_artifact(folder, version.artifact_sha256)
    except artifacts.ArtifactChanged as error:
        raise Conflict(str(error), code="artifact_changed") from None


# (folder, registered sha256) -> the stat signature of its files when that hash last matched.
# Re-hashing a 300 MB policy on every task would cost seconds; a folder whose every file has
# the same size and mtime as when it last verified has not been rewritten in between.
_VERIFIED: dict[tuple[str, str], tuple] = {}


def _stat_signature(folder: Path) -> tuple:
    entries = []
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            entries.append((path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


def version_model_dir(version: ModelVersion, *, verify: bool = True) -> Path:
    """The folder a worker loads a version from: the one way every worker finds a version's weights.

    builtin: URIs resolve to their converted folder in the artifact store (converted once, on
    first use); local artifacts are checked against the sha256 recorded at registration
    (`Conflict` if they changed since), unless `verify=False`. A folder already verified is
    re-hashed only when a file's size or mtime changed.
    """
    from rlhf.models import resolve_model_path

    if not artifacts.is_local_artifact(version.artifact_uri):
        return resolve_model_path(version.artifact_uri, Path(settings.ARTIFACTS_DIR))
    folder = version_artifact_path(version, verify=False)
    if verify and version.artifact_sha256:
        key = (str(folder), version.artifact_sha256)
        signature = _stat_signature(folder)
        if _VERIFIED.get(key) != signature:
            _VERIFIED.pop(key, None)
            _verify(folder, version)
            _VERIFIED[key] = signature
    return folder


def version_record(version: ModelVersion) -> dict:
    """What a downloaded archive says about itself: identity, lineage and how to load it."""
    run = version.training_run
    folder = Path(version.artifact_uri)
    is_adapter = (folder / "adapter_config.json").is_file()
    lineage = [
        {
            "id": v.pk,
            "kind": v.kind,
            "number": v.number,
            "name": v.name,
            "artifact_uri": v.artifact_uri,
            "artifact_sha256": v.artifact_sha256,
        }
        for v in version_lineage(version)
    ]
    return {
        "project_id": version.project_id,
        "version_id": version.pk,
        "kind": version.kind,
        "number": version.number,
        "name": version.name,
        "artifact_sha256": version.artifact_sha256,
        "artifact_type": "lora_adapter" if is_adapter else "full",
        "base_model": version.base_model,
        "parent_id": version.parent_id,
        "snapshot_id": version.snapshot_id,
        "snapshot_content_hash": version.snapshot.content_hash if version.snapshot_id else None,
        # An SFT version trained on demonstrations, not on a preference snapshot.
        "demonstration_snapshot_id": run.demonstration_snapshot_id if run else None,
        "demonstration_snapshot_content_hash": (run.demonstration_snapshot.content_hash if run and run.demonstration_snapshot_id else None),
        "training_run_id": run.pk if run else None,
        "config_hash": version.config_hash,
        "code_version": version.code_version,
        "metrics": version.metrics,
        "lineage": lineage,
        "how_to_load": (
            "LoRA adapter: load the base in `lineage` (last entry, or the adapter_config.json base) with "
            "AutoModelForCausalLM.from_pretrained, then peft.PeftModel.from_pretrained(base, this_folder); "
            "adapters whose parent is itself an adapter are merged in lineage order."
            if is_adapter
            else (
                "AutoModelForSequenceClassification.from_pretrained(this_folder)"
                if version.kind == ModelKind.REWARD
                else "AutoModelForCausalLM.from_pretrained(this_folder); AutoTokenizer.from_pretrained(this_folder)"
            )
        ),
    }


def version_download(*, version: ModelVersion, actor):
    """(filename, chunk iterator) of a tar archive of the verified artifact plus REGISTRY.json."""
    require_role(actor, version.project_id, STAFF_ROLES)
    folder = version_artifact_path(version, verify=True)
    prefix = f"project{version.project_id}-{version.kind}-v{version.number}"
    record = json.dumps(version_record(version), indent=2, sort_keys=True).encode() + b"\n"
    return f"{prefix}.tar", artifacts.stream_tar(folder, prefix, {artifacts.REGISTRY_FILE: record})


# --------------------------------------------------------------------------------------------
# The current-policy pointer
# --------------------------------------------------------------------------------------------


def _pointer_stack(project: Project) -> list[int]:
    """Version ids the pointer has been pushed through: promotions push, rollbacks pop."""
    changes = list(PolicyPointerChange.objects.filter(project=project).order_by("id").values("action", "from_version_id", "to_version_id"))
    if not changes:
        return [project.current_policy_id] if project.current_policy_id else []
    stack: list[int] = [changes[0]["from_version_id"]] if changes[0]["from_version_id"] else []
    for change in changes:
        if change["action"] == PointerAction.PROMOTE:
            stack.append(change["to_version_id"])
        else:
            while stack and stack[-1] != change["to_version_id"]:
                stack.pop()
            if not stack:
                stack.append(change["to_version_id"])
    return stack


def _require_actor(actor, project: Project) -> None:
    # actor=None is the system itself (a worker applying an automatic promotion rule).
    if actor is not None:
        require_role(actor, project, STAFF_ROLES)


def version_promote(project: Project, version: ModelVersion, actor, *, reason: str = "") -> PolicyPointerChange:
    """Point the project's current policy at `version` (a policy of this project) and audit it.

    Idempotent: promoting the version that is already current changes nothing and returns the
    latest pointer change. `actor=None` means the system (an automatic rule in a worker).
    """
    _require_actor(actor, project)
    if len(reason) > 500:
        raise Invalid("reason must be at most 500 characters", code="bad_reason")
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project.pk)
        version = ModelVersion.objects.select_for_update().filter(pk=version.pk).first()
        if version is None or version.project_id != project.pk:
            raise NotFound("No such model version in this project.")
        if version.kind != ModelKind.POLICY:
            raise Invalid(f"{version.label} is a reward model; only policy versions can be promoted", code="not_policy")
        if version.status == VersionStatus.ARCHIVED:
            raise Conflict(f"{version.label} is archived and cannot be promoted", code="archived")
        if project.current_policy_id == version.pk:
            last = PolicyPointerChange.objects.filter(project=project).order_by("-id").first()
            if last is not None and last.to_version_id == version.pk:
                return last
        previous = project.current_policy_id
        if version.status != VersionStatus.READY:
            version.status = VersionStatus.READY
            version.save(update_fields=["status"])
        project.current_policy = version
        project.save(update_fields=["current_policy"])
        change = PolicyPointerChange.objects.create(
            project=project,
            action=PointerAction.PROMOTE,
            from_version_id=previous,
            to_version=version,
            reason=reason,
            actor=actor if (actor is not None and actor.is_authenticated) else None,
        )
        audit_record(
            actor=actor,
            action="version.promote",
            target=version,
            project=project,
            details={"from_version": previous, "to_version": version.pk, "reason": reason, "automatic": actor is None},
        )
        return change


def version_rollback(project: Project, actor, *, reason: str = "") -> PolicyPointerChange:
    """Move the pointer back to the version that was current before the latest promotion."""
    _require_actor(actor, project)
    if len(reason) > 500:
        raise Invalid("reason must be at most 500 characters", code="bad_reason")
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project.pk)
        stack = _pointer_stack(project)
        if len(stack) < 2 or stack[-1] != project.current_policy_id:
            raise Conflict("There is no earlier promoted policy to roll back to.", code="nothing_to_roll_back")
        target = ModelVersion.objects.get(pk=stack[-2])
        previous = project.current_policy_id
        project.current_policy = target
        project.save(update_fields=["current_policy"])
        change = PolicyPointerChange.objects.create(
            project=project,
            action=PointerAction.ROLLBACK,
            from_version_id=previous,
            to_version=target,
            reason=reason,
            actor=actor if (actor is not None and actor.is_authenticated) else None,
        )
        audit_record(
            actor=actor,
            action="version.rollback",
            target=target,
            project=project,
            details={"from_version": previous, "to_version": target.pk, "reason": reason, "automatic": actor is None},
        )
        return change


def pointer_history(project: Project) -> list[PolicyPointerChange]:
    return list(PolicyPointerChange.objects.filter(project=project).select_related("from_version", "to_version", "actor").order_by("-id"))


def can_roll_back(project: Project) -> bool:
    stack = _pointer_stack(project)
    return len(stack) >= 2 and stack[-1] == project.current_policy_id
