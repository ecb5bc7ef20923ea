"""Generation runs: "K responses per prompt from policy version V", executed by a worker."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATUSES = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}


class Pairing(models.TextChoices):
    ALL = "all", "All pairs among the K responses"
    SAMPLE = "sample", "A sampled number of pairs per prompt"
    RANKING = "ranking", "One ranking task of the K responses"


class GenerationRun(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="generation_runs")
    policy = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="generation_runs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    prompt_ids = models.JSONField(help_text="The prompts frozen at launch, in order.")
    k = models.PositiveSmallIntegerField()
    temperature = models.FloatField()
    top_p = models.FloatField()
    top_k = models.PositiveIntegerField()
    max_new_tokens = models.PositiveIntegerField()
    seed = models.BigIntegerField()
    batch_size = models.PositiveSmallIntegerField(default=16)
    pairing = models.CharField(max_length=10, choices=Pairing.choices, default=Pairing.ALL)
    pairs_per_prompt = models.PositiveSmallIntegerField(null=True, blank=True)
    rate_answers = models.BooleanField(default=False, help_text="Also queue every answer for thumbs up / down.")
    config_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    tokens_per_second = models.FloatField(null=True, blank=True)
    message = models.TextField(blank=True)
    log_tail = models.TextField(blank=True)
    response_count = models.PositiveIntegerField(default=0)
    pair_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"generation run {self.pk} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def sampling_dict(self) -> dict:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "max_new_tokens": self.max_new_tokens,
            "seed": self.seed,
            "batch_size": self.batch_size,
        }
