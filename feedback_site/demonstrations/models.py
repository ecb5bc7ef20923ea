"""Demonstrations: annotators write the ideal answer to a prompt, or correct a shown response.

A demonstration task is queued like a comparison pair: `overlap` distinct annotators each write
one, an annotator holds a task through a lease (`DemonstrationAssignment`, expiring after the
project's lease seconds), gets a task at most once, and a second submit of the same assignment
returns the first demonstration. Snapshots freeze every demonstration of a project into a
content-hashed JSONL in TRL's conversational SFT format (`{"messages": [...]}`), which
`python -m rlhf train sft --data` reads.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from feedback_site.annotation.models import Lease


class DemoMode(models.TextChoices):
    WRITE = "write", "Write the ideal response"
    CORRECT = "correct", "Correct the shown response"


class DemonstrationTask(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="demonstration_tasks")
    prompt = models.ForeignKey("annotation.Prompt", on_delete=models.CASCADE, related_name="demonstration_tasks")
    response = models.ForeignKey(
        "annotation.Response",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The response to correct (mode correct).",
    )
    mode = models.CharField(max_length=10, choices=DemoMode.choices)
    overlap = models.PositiveSmallIntegerField(help_text="Demonstrations wanted from distinct annotators; 0 = not queued.")
    submitted_count = models.PositiveIntegerField(default=0)
    is_complete = models.BooleanField(default=False)
    priority = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(F("project"), F("priority").desc(), F("id"), name="demo_queue_order", condition=Q(is_complete=False))]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "mode"], name="one_demo_task_per_prompt_and_mode"),
            models.CheckConstraint(condition=Q(submitted_count__lte=F("overlap")), name="demo_never_over_collected"),
        ]


class DemonstrationAssignment(Lease):
    task = models.ForeignKey(DemonstrationTask, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="demonstration_assignments")

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["task", "annotator"], name="demo_task_once_per_annotator")]
        indexes = [models.Index(fields=["task", "status", "expires_at"]), models.Index(fields=["annotator", "status", "expires_at"])]


class Demonstration(models.Model):
    """Never edited: a second submit of the same assignment returns this row."""

    assignment = models.OneToOneField(DemonstrationAssignment, on_delete=models.PROTECT, related_name="demonstration")
    task = models.ForeignKey(DemonstrationTask, on_delete=models.PROTECT, related_name="demonstrations")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="demonstrations")
    text = models.TextField()
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    accepted_after_expiry = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class DemonstrationSnapshot(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="demonstration_snapshots")
    number = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64)
    path = models.CharField(max_length=500, help_text="Relative to ARTIFACTS_DIR.")
    demonstration_count = models.PositiveIntegerField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["project", "number"], name="one_demo_snapshot_number")]
