"""Binary ratings: thumbs up or down, with an optional reason, on one answer at a time.

A rating task is a task kind (`RATING`) of the one lease queue: `overlap` distinct annotators
each rate the answer once, through a lease (`RatingAssignment`); a second submit of the same
assignment returns the first rating. Ratings are the feedback a deployed chat collects and what
KTO learns from: rating snapshots freeze them into a content-hashed JSONL in TRL's unpaired
format (`{"prompt": [...], "completion": [...], "label": true|false}`), one line per rated answer
with the majority label of its ratings.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from feedback_site.annotation.models import Lease


class RatingTask(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="rating_tasks")
    response = models.ForeignKey("annotation.Response", on_delete=models.PROTECT, related_name="rating_tasks")
    overlap = models.PositiveSmallIntegerField(help_text="Ratings wanted from distinct annotators; 0 = not queued.")
    submitted_count = models.PositiveIntegerField(default=0)
    is_complete = models.BooleanField(default=False)
    priority = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(F("project"), F("priority").desc(), F("id"), name="rating_queue_order", condition=Q(is_complete=False))]
        constraints = [
            models.UniqueConstraint(fields=["response"], name="one_rating_task_per_response"),
            models.CheckConstraint(condition=Q(submitted_count__lte=F("overlap")), name="rating_never_over_collected"),
        ]


class RatingAssignment(Lease):
    task = models.ForeignKey(RatingTask, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="rating_assignments")

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["task", "annotator"], name="rating_task_once_per_annotator")]
        indexes = [models.Index(fields=["task", "status", "expires_at"]), models.Index(fields=["annotator", "status", "expires_at"])]


class Rating(models.Model):
    """Never edited: a second submit of the same assignment returns this row."""

    assignment = models.OneToOneField(RatingAssignment, on_delete=models.PROTECT, related_name="rating")
    task = models.ForeignKey(RatingTask, on_delete=models.PROTECT, related_name="ratings")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ratings")
    label = models.BooleanField(help_text="True: thumbs up (desirable); False: thumbs down (undesirable).")
    reason = models.TextField(blank=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    accepted_after_expiry = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class AnswerSource(models.TextChoices):
    PLAYGROUND = "playground", "Playground"


class AnswerRating(models.Model):
    """Thumbs up / down given outside the queue, on an answer a person saw elsewhere (staff in
    the playground rating what a version says): one per answer and rater, and rating the answer
    again changes it. The conversation and the answer are copied here, so the rating snapshot
    never depends on the chat it came from."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="answer_ratings")
    source = models.CharField(max_length=20, choices=AnswerSource.choices)
    source_id = models.CharField(max_length=64, help_text="The answer's id where it came from (a playground chat message).")
    model_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    conversation = models.JSONField(help_text="The messages the answer replied to: [{role, content}, ...], ending with a user turn.")
    answer = models.TextField()
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="answer_ratings")
    label = models.BooleanField(help_text="True: thumbs up (desirable); False: thumbs down (undesirable).")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["source", "source_id", "rater"], name="one_answer_rating_per_rater")]


class RatingSnapshot(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="rating_snapshots")
    number = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64)
    path = models.CharField(max_length=500, help_text="Relative to ARTIFACTS_DIR.")
    example_count = models.PositiveIntegerField(help_text="Rated answers in the file (one line each).")
    desirable_count = models.PositiveIntegerField()
    undesirable_count = models.PositiveIntegerField()
    split_count = models.PositiveIntegerField(help_text="Answers left out because their ratings were split evenly.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["project", "number"], name="one_rating_snapshot_number")]
