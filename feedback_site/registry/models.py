"""Model versions (policies and reward models). Versions are immutable once registered:
services create them; nothing updates their artifact or lineage."""

from __future__ import annotations

from django.conf import settings
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
    artifact_uri = models.CharField(
        max_length=1000, help_text="A folder transformers can load, or builtin:smollm2-135m-instruct."
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
