"""K-way rankings: an annotator orders K = 3–9 answers to one prompt, ties allowed.

A ranking task is a task kind (`RANKING`) of the one lease queue: `overlap` distinct annotators
each rank the task's answers once, through a lease (`RankingAssignment`) that fixes the order the
answers are shown in (a random permutation from `display_seed`, stored with the result); a second
submit of the same lease returns the first ranking. A ranking is a list of tiers of response ids,
best first (`rlhf.rankings`), or "all unacceptable". Snapshots keep the raw rankings and expand
them to pairs (the rule in `rlhf.rankings`).
"""

from __future__ import annotations

import random

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from feedback_site.annotation.models import Lease, Strength


class RankingSource(models.TextChoices):
    GENERATED = "generated", "Generated"
    IMPORTED = "imported", "Imported"


class RankingTask(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="ranking_tasks")
    prompt = models.ForeignKey("annotation.Prompt", on_delete=models.PROTECT, related_name="ranking_tasks")
    response_ids = models.JSONField(help_text="The K answers to rank: annotation.Response ids, in creation order.")
    answer_key = models.CharField(max_length=200, help_text="The sorted response ids: one task per answer set.")
    overlap = models.PositiveSmallIntegerField(help_text="Rankings wanted from distinct annotators; 0 = held.")
    submitted_count = models.PositiveIntegerField(default=0)
    is_complete = models.BooleanField(default=False)
    priority = models.IntegerField(default=0)
    is_gold = models.BooleanField(default=False)
    gold_order = models.JSONField(null=True, blank=True, help_text="Gold tasks: the known ranking (tiers of response ids).")
    prelabels = models.JSONField(
        default=list,
        blank=True,
        help_text='Imported rankings [{"order": tiers of response ids, "all_unacceptable": bool}], used while none is collected.',
    )
    import_batch = models.ForeignKey("projects.ImportBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=10, choices=RankingSource.choices, default=RankingSource.GENERATED)
    generation_run = models.ForeignKey("generation.GenerationRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(F("project"), F("priority").desc(), F("id"), name="ranking_queue_order", condition=Q(is_complete=False))]
        constraints = [
            models.UniqueConstraint(fields=["project", "answer_key"], name="one_ranking_task_per_answer_set"),
            models.CheckConstraint(condition=Q(submitted_count__lte=F("overlap")), name="ranking_never_over_collected"),
            models.CheckConstraint(condition=Q(is_gold=False) | Q(gold_order__isnull=False), name="gold_ranking_has_its_order"),
        ]

    def __str__(self) -> str:
        return f"ranking task {self.pk} ({len(self.response_ids)} answers)"


def shown_order(response_ids: list[int], display_seed: int) -> list[int]:
    """The order a lease shows the answers in: a permutation fixed by the lease's seed, so a
    reload shows the same order and the result can record it."""
    order = list(response_ids)
    random.Random(display_seed).shuffle(order)
    return order


def new_display_seed() -> dict:
    return {"display_seed": random.SystemRandom().randrange(1, 2**31)}


class RankingAssignment(Lease):
    task = models.ForeignKey(RankingTask, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ranking_assignments")
    display_seed = models.PositiveIntegerField(help_text="Seeds the order the answers are shown in (shown_order).")

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["task", "annotator"], name="ranking_task_once_per_annotator")]
        indexes = [models.Index(fields=["task", "status", "expires_at"]), models.Index(fields=["annotator", "status", "expires_at"])]

    @property
    def order_shown(self) -> list[int]:
        return shown_order(self.task.response_ids, self.display_seed)


class Ranking(models.Model):
    """Never edited: a second submit of the same assignment returns this row."""

    assignment = models.OneToOneField(RankingAssignment, on_delete=models.PROTECT, related_name="ranking")
    task = models.ForeignKey(RankingTask, on_delete=models.PROTECT, related_name="rankings")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="rankings")
    tiers = models.JSONField(help_text="Best first; each tier a list of response ids ranked equal.")
    order_key = models.CharField(
        max_length=200, help_text='Canonical form of the ranking ("3>1=4>2", or "unacceptable"): equal keys agree.'
    )
    all_unacceptable = models.BooleanField(default=False)
    strength = models.CharField(max_length=10, choices=Strength.choices, blank=True)
    rationale = models.TextField(blank=True)
    order_shown = models.JSONField(help_text="Response ids in the order the page showed them.")
    gold_correct = models.BooleanField(null=True, blank=True, help_text="Gold tasks: whether no pair of the gold order is reversed.")
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    accepted_after_expiry = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
