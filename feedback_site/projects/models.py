"""Projects, who belongs to them in which role, their guidelines and their import history."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    ML_STAFF = "ml_staff", "ML staff"
    ANNOTATOR = "annotator", "Annotator"


class Project(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    overlap = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text="Judgments each pair needs from distinct annotators. New pairs copy this value.",
    )
    lease_seconds = models.PositiveIntegerField(
        default=600,
        validators=[MinValueValidator(30), MaxValueValidator(24 * 3600)],
        help_text="How long an annotator holds a pair without a heartbeat from the page.",
    )
    criteria = models.JSONField(
        default=list,
        blank=True,
        help_text='Optional per-criterion votes shown to annotators, e.g. ["helpful", "harmless", "honest"].',
    )
    # Annotation quality (issue 5). Defaults keep a new project's queue exactly as before.
    gold_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of an annotator's assignments drawn from gold pairs (known answers).",
    )
    gold_min_judged = models.PositiveIntegerField(
        default=10, help_text="Gold pairs an annotator must have judged before their gold accuracy can pause them."
    )
    gold_min_accuracy = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Gold accuracy below which an annotator is paused (0 = never pause).",
    )
    dynamic_overlap = models.BooleanField(
        default=False,
        help_text="Each pair first gets two judgments; a third is requested only when they disagree.",
    )
    uncertainty_first = models.BooleanField(
        default=False,
        help_text="Once a reward model exists, serve first the pairs whose responses it scores closest.",
    )
    min_seconds_per_judgment = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0)],
        help_text="Judgments made faster than this are flagged as too fast (0 = no minimum).",
    )
    current_policy = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    # A paused annotator gets no new work; the reason says why (e.g. gold accuracy) for admins.
    paused_at = models.DateTimeField(null=True, blank=True)
    pause_reason = models.TextField(blank=True)
    # Simulated annotators (rule- or reward-model-driven) record judgments through the same
    # services as people but are kept out of human statistics.
    is_simulated = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")]
        indexes = [models.Index(fields=["user", "project"])]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} as {self.role}"


class GuidelineVersion(models.Model):
    """Guideline text is versioned so every judgment can say which text it was made under."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="guidelines")
    number = models.PositiveIntegerField()
    text = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "-number"]
        constraints = [models.UniqueConstraint(fields=["project", "number"], name="one_guideline_number")]

    def __str__(self) -> str:
        return f"{self.project} guidelines v{self.number}"


class ImportKind(models.TextChoices):
    PROMPTS = "prompts", "Prompts (JSONL or CSV)"
    PAIRS = "pairs", "Ready-made pairs (JSONL)"
    HH_RLHF = "hh_rlhf", "Anthropic HH-RLHF (JSONL, optionally .gz)"
    RANKINGS = "rankings", "K-way rankings (JSONL)"
    CONVERSATIONS = "conversations", "Conversation trees, Open-Assistant style (JSONL)"


class ImportBatch(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    kind = models.CharField(max_length=20, choices=ImportKind.choices)
    filename = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    record_count = models.PositiveIntegerField()
    queued_for_annotation = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} import {self.filename} ({self.record_count})"
