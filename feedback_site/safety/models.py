"""The safety screen: a per-project policy, and the screen's decision stored with each response.

How hiding works without touching the annotation queue: a pair that contains a hidden or
pending-review response is taken out of the queue by `annotation.services.pairs_withdraw`
(`Pair.overlap = 0`, "0 = not queued", as the Pair model documents); the original overlap is kept
in `HeldPair` and restored (`pair_requeue`) when staff release the response (and no other response
of the pair is still held). A "warn" decision is copied onto the response (`Response.warning`,
`annotation.services.responses_warn`), which is what the queue's payload shows.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SafetyAction(models.TextChoices):
    HIDE = "hide", "Hide from annotators"
    WARN = "warn", "Show blurred with a warning"
    REVIEW = "review", "Send to staff review first"


class SafetyPolicy(models.Model):
    project = models.OneToOneField("projects.Project", on_delete=models.CASCADE, related_name="safety_policy")
    enabled = models.BooleanField(default=True)
    action = models.CharField(max_length=10, choices=SafetyAction.choices, default=SafetyAction.REVIEW)
    use_default_rules = models.BooleanField(default=True, help_text="Apply the shipped default rule list.")
    rules = models.JSONField(default=list, blank=True, help_text='Extra rules: [{"name": ..., "pattern": regex}, ...].')
    classifier = models.ForeignKey(
        "registry.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="A reward-model version used as harmlessness classifier (optional).",
    )
    threshold = models.FloatField(default=0.0, help_text="A classifier score below this flags the response.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"safety policy of project {self.project_id} ({self.action})"


class Verdict(models.TextChoices):
    CLEAN = "clean", "Clean"
    FLAGGED = "flagged", "Flagged"


class ReviewStatus(models.TextChoices):
    NONE = "", "Not reviewed"
    PENDING = "pending", "Pending review"
    RELEASED = "released", "Released"
    REJECTED = "rejected", "Rejected"


class SafetyScreen(models.Model):
    """The screen's decision for one generated response (one-to-one with annotation.Response)."""

    response = models.OneToOneField("annotation.Response", on_delete=models.CASCADE, related_name="safety_screen")
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    action = models.CharField(max_length=10, choices=SafetyAction.choices, blank=True, help_text="Empty when clean.")
    matched_rule = models.CharField(max_length=100, blank=True)
    score = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    classifier = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    review_status = models.CharField(max_length=10, choices=ReviewStatus.choices, blank=True, default="")
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["project", "review_status", "id"])]

    def __str__(self) -> str:
        return f"screen of response {self.response_id}: {self.verdict} {self.action}"

    @property
    def hidden(self) -> bool:
        """Whether annotators must not see the response."""
        if self.verdict != Verdict.FLAGGED:
            return False
        if self.review_status == ReviewStatus.RELEASED:
            return False
        return self.action in (SafetyAction.HIDE, SafetyAction.REVIEW) or self.review_status == ReviewStatus.REJECTED


class HeldPair(models.Model):
    """A pair taken out of the queue (overlap set to 0) because one of its responses is held."""

    pair = models.OneToOneField("annotation.Pair", on_delete=models.CASCADE, related_name="safety_hold")
    original_overlap = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
