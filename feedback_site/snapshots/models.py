"""Immutable, content-hashed preference datasets frozen from a project's judgments."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SnapshotStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"


class Snapshot(models.Model):
    """A snapshot made from the page or API is built by a background job (`snapshots.build`):
    the row exists at once with status pending, then running with progress, then ready (files,
    counts and content hash set) or failed (error set, no files). Synchronous creation through
    `services.snapshot_create` makes a ready row directly."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="snapshots")
    number = models.PositiveIntegerField()
    content_hash = models.CharField(
        max_length=64, blank=True, default="", help_text="sha256 over the data files and the rule; empty until the snapshot is ready."
    )
    status = models.CharField(max_length=10, choices=SnapshotStatus.choices, default=SnapshotStatus.READY)
    progress_done = models.PositiveBigIntegerField(default=0, help_text="Pairs written so far.")
    progress_total = models.PositiveBigIntegerField(default=0, help_text="Pairs to write.")
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    aggregation = models.CharField(max_length=40)
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="Aggregation options (exclusions, bias test level); part of the content hash and manifest.",
    )
    excluded_judgment_count = models.PositiveIntegerField(
        default=0, help_text="Judgments kept in the raw file but not used for outcomes (see options)."
    )
    adjudicated_count = models.PositiveIntegerField(default=0, help_text="Pairs whose outcome is an adjudicated label.")
    include_prelabelled = models.BooleanField(default=True)
    artifact_dir = models.CharField(max_length=1000, blank=True, default="")
    pair_count = models.PositiveIntegerField(default=0)
    preference_count = models.PositiveIntegerField(default=0)
    judgment_count = models.PositiveIntegerField(default=0)
    dropped_count = models.PositiveIntegerField(default=0, help_text="Pairs with judgments but no chosen/rejected outcome.")
    ranking_task_count = models.PositiveIntegerField(
        default=0, help_text="Ranking tasks in rankings.jsonl (with rankings or imported ones)."
    )
    ranking_count = models.PositiveIntegerField(default=0, help_text="Rankings in rankings.jsonl.")
    ranking_pair_count = models.PositiveIntegerField(default=0, help_text="Preference pairs the rankings expand to.")
    conversation_pair_count = models.PositiveIntegerField(default=0, help_text="Preference pairs from judged conversation turns.")
    files = models.JSONField(default=dict, help_text="File name -> sha256.")
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "-number"]
        constraints = [models.UniqueConstraint(fields=["project", "number"], name="one_snapshot_number")]

    def __str__(self) -> str:
        return f"snapshot {self.number} of {self.project} ({self.content_hash[:12] or self.status})"

    @property
    def is_ready(self) -> bool:
        return self.status == SnapshotStatus.READY
