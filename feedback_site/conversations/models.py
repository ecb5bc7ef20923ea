"""Multi-turn conversation trees: a task kind of the one lease queue.

A conversation task holds an opening (system prompt, earlier turns, a user turn) and asks for
`turns` assistant turns. The annotator who leases it walks one path down from the opening: at
every *branch point* a worker samples `candidates` (K) next assistant turns from the task's policy
version, the annotator ranks them (a pick is a ranking with the picked one first and the rest tied
second), the chosen reply (or the annotator's edit of it) continues the conversation, the next
user turn follows (scripted with the task, or written by the annotator where the task allows it),
and so on. Every annotator walks their own path, so overlap N gives a tree with N branches below
the opening (Open-Assistant style); every branch point keeps its candidates, its ranking and,
through its parent node, the full history it was judged with.

Storage, in the queue's terms (`annotation.queue.TaskKind`):
- `ConversationTask` is the task (overlap, submitted_count, is_complete, priority);
- `ConversationAssignment` is the lease, and it holds the whole conversation: renewed by the
  page's heartbeat and by every judged turn, served again after a reload;
- `BranchPoint` rows are written turn by turn as the annotator judges them, so nothing judged is
  lost to a reload or a lapsed lease;
- `ConversationResult` is the queue's result: written by the submit of the last turn (once per
  lease, idempotent), it counts toward the overlap.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from feedback_site.annotation.models import Lease


class TaskSource(models.TextChoices):
    QUEUED = "queued", "Queued for annotators"
    IMPORTED = "imported", "Imported tree"


class ConversationTask(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="conversation_tasks")
    prompt = models.ForeignKey(
        "annotation.Prompt",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="conversation_tasks",
        help_text="Where the opening came from, if from a prompt.",
    )
    system_prompt = models.TextField(blank=True)
    opening = models.ForeignKey(
        "ConversationNode",
        null=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The last node of the opening: the first user turn the policy answers.",
    )
    followups = models.JSONField(default=list, blank=True, help_text="Scripted user turns: followups[i] follows the i-th chosen reply.")
    policy = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="conversation_tasks")
    turns = models.PositiveSmallIntegerField(help_text="Assistant turns each annotator judges (1-10).")
    candidates = models.PositiveSmallIntegerField(help_text="Candidate replies sampled at each branch point (2-9).")
    allow_user_turns = models.BooleanField(default=False, help_text="The annotator may write the next user turn.")
    allow_edits = models.BooleanField(default=False, help_text="The annotator may edit the chosen reply before it continues.")
    sampling = models.JSONField(default=dict, blank=True, help_text="rlhf.generation.SamplingConfig fields used for the candidates.")
    source = models.CharField(max_length=10, choices=TaskSource.choices, default=TaskSource.QUEUED)
    metadata = models.JSONField(default=dict, blank=True)
    overlap = models.PositiveSmallIntegerField(help_text="Annotators (branches) wanted; 0 = not queued.")
    submitted_count = models.PositiveIntegerField(default=0)
    is_complete = models.BooleanField(default=False)
    priority = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(F("project"), F("priority").desc(), F("id"), name="conversation_queue_order", condition=Q(is_complete=False))
        ]
        constraints = [models.CheckConstraint(condition=Q(submitted_count__lte=F("overlap")), name="conversation_never_over_collected")]


class NodeSource(models.TextChoices):
    OPENING = "opening", "Opening"
    CANDIDATE = "candidate", "Sampled candidate"
    EDIT = "edit", "Annotator's edit of a reply"
    SCRIPTED = "scripted", "Scripted user turn"
    WRITTEN = "written", "User turn written by the annotator"
    IMPORTED = "imported", "Imported"


class ConversationNode(models.Model):
    """One message of the tree; `parent` is the message it follows (None: the first message)."""

    task = models.ForeignKey(ConversationTask, on_delete=models.CASCADE, related_name="nodes")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    role = models.CharField(max_length=10, choices=[("user", "User"), ("assistant", "Assistant")])
    content = models.TextField(blank=True)
    content_html = models.TextField(blank=True, editable=False, help_text="Sanitised HTML of `content` (core.rendering).")
    source = models.CharField(max_length=10, choices=NodeSource.choices)
    sample_index = models.PositiveSmallIntegerField(null=True, blank=True)
    model_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    edited_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="edits")
    # Set on the replies of a branch point (the sampled candidates and an annotator's edit).
    branch_point = models.ForeignKey("BranchPoint", null=True, blank=True, on_delete=models.CASCADE, related_name="replies")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["task", "parent"])]


class ConversationAssignment(Lease):
    task = models.ForeignKey(ConversationTask, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="conversation_assignments")

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["task", "annotator"], name="conversation_once_per_annotator")]
        indexes = [models.Index(fields=["task", "status", "expires_at"]), models.Index(fields=["annotator", "status", "expires_at"])]


class GenerationStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a worker"
    GENERATING = "generating", "Generating"
    READY = "ready", "Candidates ready"
    FAILED = "failed", "Generation failed"


class BranchPoint(models.Model):
    """A comparison of the K replies to one user node, with the full history above it.

    The worker writes the candidates (children of `parent`) and `status` ready in one transaction,
    once; the annotator's submit writes `order` (tiers of candidate node ids, best first),
    `chosen`, and `continued_with` (the chosen node, or the annotator's edit of it)."""

    task = models.ForeignKey(ConversationTask, on_delete=models.CASCADE, related_name="branch_points")
    assignment = models.ForeignKey(ConversationAssignment, null=True, blank=True, on_delete=models.PROTECT, related_name="branch_points")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    parent = models.ForeignKey(
        ConversationNode, on_delete=models.PROTECT, related_name="branch_points", help_text="The user turn the candidates answer."
    )
    turn_index = models.PositiveSmallIntegerField(help_text="0 = the first assistant turn of this path.")
    status = models.CharField(max_length=10, choices=GenerationStatus.choices, default=GenerationStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Generation attempts started (a redelivered task counts again).")
    error = models.TextField(blank=True)
    order = models.JSONField(null=True, blank=True, help_text="The ranking: tiers of candidate node ids, best first.")
    chosen = models.ForeignKey(ConversationNode, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    continued_with = models.ForeignKey(ConversationNode, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    next_user_node = models.ForeignKey(
        ConversationNode,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The user turn that followed (the next branch point's parent).",
    )
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    accepted_after_expiry = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    judged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["assignment", "turn_index"], name="one_branch_point_per_turn")]


class ConversationResult(models.Model):
    """The queue's result: one finished conversation of one annotator (never edited)."""

    assignment = models.OneToOneField(ConversationAssignment, on_delete=models.PROTECT, related_name="result")
    task = models.ForeignKey(ConversationTask, on_delete=models.PROTECT, related_name="results")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="conversation_results")
    leaf = models.ForeignKey(ConversationNode, on_delete=models.PROTECT, related_name="+", help_text="The last reply of the path.")
    accepted_after_expiry = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class ConversationSnapshot(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="conversation_snapshots")
    number = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64)
    path = models.CharField(max_length=500, help_text="Relative to ARTIFACTS_DIR.")
    example_count = models.PositiveIntegerField(help_text="Preference pairs in the file (one line each).")
    branch_point_count = models.PositiveIntegerField(help_text="Judged branch points the pairs come from.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["project", "number"], name="one_conversation_snapshot_number")]
