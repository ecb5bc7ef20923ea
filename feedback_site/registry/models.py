"""Model versions (policies and reward models) and the history of a project's policy pointer.

Versions are immutable once registered: services create them and nothing may change their
artifact, lineage or metrics afterwards. Two guards enforce it: `ModelVersion.save()` refuses an
update that touches an immutable field, and a PostgreSQL trigger (migration 0002) refuses the
same through any path that skips `save()` (`QuerySet.update`, raw SQL). Only `status` (draft ->
ready -> archived) and `created_by` (nulled when the user is deleted) may change. The artifact's
content hash is recorded at registration and checked again before it is served or loaded.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import models


class ModelKind(models.TextChoices):
    POLICY = "policy", "Policy"
    REWARD = "reward", "Reward model"


class VersionStatus(models.TextChoices):
    DRAFT = "draft", "Draft (not evaluated)"
    READY = "ready", "Ready"
    ARCHIVED = "archived", "Archived"


class ModelVersion(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="model_versions")
    kind = models.CharField(max_length=10, choices=ModelKind.choices)
    number = models.PositiveIntegerField(help_text="0 is the base policy the project started from.")
    name = models.CharField(max_length=200)
    artifact_uri = models.CharField(max_length=1000, help_text="A folder transformers can load, or builtin:smollm2-135m-instruct.")
    artifact_sha256 = models.CharField(
        max_length=64,
        blank=True,
        help_text="Content hash of the artifact folder at registration (empty for builtin: URIs).",
    )
    base_model = models.CharField(max_length=1000)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    snapshot = models.ForeignKey("snapshots.Snapshot", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    config_hash = models.CharField(max_length=64, blank=True)
    code_version = models.CharField(max_length=64, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=VersionStatus.choices, default=VersionStatus.DRAFT)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "kind", "number"]
        constraints = [models.UniqueConstraint(fields=["project", "kind", "number"], name="one_version_number")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} v{self.number} ({self.name})"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            stored = ModelVersion.objects.filter(pk=self.pk).values(*IMMUTABLE_FIELDS).first()
            if stored is not None:
                changed = [name for name in IMMUTABLE_FIELDS if stored[name] != getattr(self, name)]
                if changed:
                    raise VersionImmutable(f"model version {self.pk} is immutable; refusing to change {', '.join(changed)}")
        super().save(*args, **kwargs)

    @property
    def training_run(self):
        """The training run that produced this version (None for base versions)."""
        try:
            return self.produced_by
        except ObjectDoesNotExist:
            return None

    @property
    def label(self) -> str:
        return f"{'policy' if self.kind == ModelKind.POLICY else 'reward'} v{self.number}"


# Fields (attribute names) frozen at registration. Kept in step with the trigger in migration 0002.
IMMUTABLE_FIELDS = (
    "project_id",
    "kind",
    "number",
    "name",
    "artifact_uri",
    "artifact_sha256",
    "base_model",
    "parent_id",
    "snapshot_id",
    "config_hash",
    "code_version",
    "metrics",
    "created_at",
)


class VersionImmutable(Exception):
    """Raised on any attempt to change a registered version's artifact, lineage or metrics."""


class PointerAction(models.TextChoices):
    PROMOTE = "promote", "Promote"
    ROLLBACK = "rollback", "Roll back"


class PolicyPointerChange(models.Model):
    """One move of a project's current-policy pointer. Roll back replays these as a stack:
    a promotion pushes its version, a rollback pops back to the version below."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="policy_pointer_changes")
    action = models.CharField(max_length=10, choices=PointerAction.choices)
    from_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    to_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=500, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "id"]

    def __str__(self) -> str:
        return f"{self.action} to {self.to_version_id} ({self.created_at:%Y-%m-%d %H:%M})"
