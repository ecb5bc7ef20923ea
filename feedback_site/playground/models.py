"""Playground chats: staff talk to one policy version, or to two side by side.

Each lane (0, or 0 and 1 side by side) keeps its own message list, so a lane's history is exactly
what its version saw. The worker streams an answer by updating its assistant message row every
few tokens (`content` grows, `status` goes queued -> streaming -> done); the page polls it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Chat(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="playground_chats")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    system_prompt = models.TextField(blank=True)
    version_a = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    version_b = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"playground chat {self.pk}"

    def lanes(self) -> list[int]:
        return [0, 1] if self.version_b_id else [0]

    def version_for(self, lane: int):
        return self.version_b if lane == 1 else self.version_a


class MessageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    STREAMING = "streaming", "Streaming"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


OPEN_STATUSES = {MessageStatus.QUEUED, MessageStatus.STREAMING}


class ChatMessage(models.Model):
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="messages")
    lane = models.PositiveSmallIntegerField(default=0)
    turn = models.PositiveIntegerField(help_text="0-based index of the user turn this message belongs to.")
    role = models.CharField(max_length=10, choices=[("user", "user"), ("assistant", "assistant")])
    content = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=MessageStatus.choices, default=MessageStatus.DONE)
    model_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    sampling = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    # Streaming statistics, written by the worker.
    token_count = models.PositiveIntegerField(default=0)
    updates = models.PositiveIntegerField(default=0, help_text="How many times the streamed content was written.")
    first_token_ms = models.FloatField(null=True, blank=True, help_text="From the task's start to the first token.")
    queue_ms = models.FloatField(null=True, blank=True, help_text="From the request to the task's start.")
    total_ms = models.FloatField(null=True, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    model_was_loaded = models.BooleanField(null=True, blank=True, help_text="False when the worker had the version in memory.")
    # The safety screen's decision on the answer (see feedback_site.safety).
    safety_verdict = models.CharField(max_length=10, blank=True)
    safety_action = models.CharField(max_length=10, blank=True)
    safety_rule = models.CharField(max_length=100, blank=True)
    safety_score = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["turn", "lane", "id"]
        indexes = [models.Index(fields=["chat", "lane", "turn"])]

    def __str__(self) -> str:
        return f"{self.role} message {self.pk} ({self.status})"

    @property
    def withheld(self) -> bool:
        """Hidden from the page until staff ask to see it (policy hide or review flagged it)."""
        return self.safety_verdict == "flagged" and self.safety_action in ("hide", "review")
