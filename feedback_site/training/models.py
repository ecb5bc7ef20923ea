"""Training runs (SFT, reward model, DPO, KTO, PPO, RLOO, GRPO) and their metric time series.

SFT trains on a demonstration snapshot (annotators' written answers); KTO on a rating snapshot
(thumbs up / down) or a preference snapshot (each pair unpaired); every other method on a
preference snapshot. A run holds exactly one kind of data, and a check constraint keeps it so.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Method(models.TextChoices):
    SFT = "sft", "SFT"
    REWARD = "reward", "Reward model (Bradley–Terry)"
    DPO = "dpo", "DPO"
    KTO = "kto", "KTO"
    PPO = "ppo", "PPO"
    RLOO = "rloo", "RLOO"
    GRPO = "grpo", "GRPO"


NEEDS_REWARD_MODEL = {Method.PPO, Method.RLOO, Method.GRPO}
# Methods that read demonstrations instead of preference pairs.
NEEDS_DEMONSTRATIONS = {Method.SFT}
# Methods that can read a rating snapshot (thumbs up / down) instead of preference pairs.
TAKES_RATINGS = {Method.KTO}


class TrainingStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (TrainingStatus.QUEUED, TrainingStatus.RUNNING)
TERMINAL_STATUSES = (TrainingStatus.SUCCEEDED, TrainingStatus.FAILED, TrainingStatus.CANCELLED)


class TrainingRun(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="training_runs")
    method = models.CharField(max_length=10, choices=Method.choices)
    snapshot = models.ForeignKey(
        "snapshots.Snapshot",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="training_runs",
        help_text="The preference data (every method but SFT).",
    )
    demonstration_snapshot = models.ForeignKey(
        "demonstrations.DemonstrationSnapshot",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="training_runs",
        help_text="The demonstrations (SFT only).",
    )
    rating_snapshot = models.ForeignKey(
        "ratings.RatingSnapshot",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="training_runs",
        help_text="The thumbs up / down ratings (KTO only; KTO can train on a preference snapshot instead).",
    )
    parent = models.ForeignKey(
        "registry.ModelVersion",
        on_delete=models.PROTECT,
        related_name="training_runs",
        help_text="The policy trained from (or the backbone of a reward model).",
    )
    reward_model = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    config = models.JSONField(help_text="The validated config with every default filled in.")
    config_hash = models.CharField(max_length=64)
    launch_key = models.CharField(max_length=64, help_text="Hash of method, inputs and config: one active run per key.")
    status = models.CharField(max_length=10, choices=TrainingStatus.choices, default=TrainingStatus.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    latest_metrics = models.JSONField(default=dict, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    message = models.TextField(blank=True)
    log_tail = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times a worker started (or resumed) it.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=255, blank=True, help_text="host:pid of the worker process running it.")
    output_version = models.OneToOneField(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="produced_by"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Two people pressing "launch" on the same thing at once get one run.
            models.UniqueConstraint(fields=["launch_key"], condition=Q(status__in=["queued", "running"]), name="one_active_run_per_launch"),
            # The worker picks the data file by method; a run with the wrong kind of snapshot (or
            # both, or neither) could only fail there, so the database refuses it up front.
            models.CheckConstraint(
                condition=(
                    Q(method="sft", demonstration_snapshot__isnull=False, snapshot__isnull=True, rating_snapshot__isnull=True)
                    | Q(method="kto", rating_snapshot__isnull=False, snapshot__isnull=True, demonstration_snapshot__isnull=True)
                    | (~Q(method="sft") & Q(snapshot__isnull=False, demonstration_snapshot__isnull=True, rating_snapshot__isnull=True))
                ),
                name="training_data_kind_matches_method",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_method_display()} run {self.pk} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def data_label(self) -> str:
        """What the run trains on, for names and pages: "snapshot 3" or "demonstration snapshot 2"."""
        if self.demonstration_snapshot_id is not None:
            return f"demonstration snapshot {self.demonstration_snapshot.number}"
        if self.rating_snapshot_id is not None:
            return f"rating snapshot {self.rating_snapshot.number}"
        return f"snapshot {self.snapshot.number}"


class TrainingMetric(models.Model):
    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metric_points")
    step = models.PositiveIntegerField()
    values = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step", "id"]
        indexes = [models.Index(fields=["run", "step"])]
