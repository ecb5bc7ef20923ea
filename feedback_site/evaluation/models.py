"""Automated evaluation runs, their per-prompt samples, and the adversarial prompt suite.

Evaluation prompts are `annotation.Prompt` rows with `split="eval"`, created only by the
evaluation services (born held out, never moved between splits); adversarial prompts live in
their own table. Neither is ever offered to generation for annotation or written to a
snapshot, so no training data can contain them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class EvaluationKind(models.TextChoices):
    POLICY = "policy", "Policy vs baseline"
    REWARD = "reward", "Reward-model accuracy"


class EvaluationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class EvaluationTrigger(models.TextChoices):
    MANUAL = "manual", "Launched by hand"
    TRAINING = "training", "After a training run"
    ROUND = "round", "Part of a round"


ACTIVE = (EvaluationStatus.QUEUED, EvaluationStatus.RUNNING)


class EvaluationRun(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="evaluation_runs")
    kind = models.CharField(max_length=10, choices=EvaluationKind.choices, default=EvaluationKind.POLICY)
    policy = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="evaluations")
    baseline = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reference = models.ForeignKey(
        "registry.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="KL reference: the policy's parent (or itself for a base policy).",
    )
    reward_model = models.ForeignKey(
        "registry.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="judged_evaluations",
        help_text="Judge of the win-rate (policy runs) or the model under test (reward runs).",
    )
    harmlessness_model = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    training_run = models.ForeignKey("training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluations")
    trigger = models.CharField(max_length=10, choices=EvaluationTrigger.choices, default=EvaluationTrigger.MANUAL)
    config = models.JSONField(default=dict, help_text="Sampling and statistics settings, every default filled in.")
    launch_key = models.CharField(max_length=64, help_text="Hash of kind, versions and config: one active run per key.")
    status = models.CharField(max_length=10, choices=EvaluationStatus.choices, default=EvaluationStatus.QUEUED)
    results = models.JSONField(default=dict, blank=True)
    notes = models.JSONField(default=list, blank=True, help_text="Caveats shown with the results.")
    message = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["launch_key"], condition=Q(status__in=["queued", "running"]), name="one_active_evaluation_per_key"
            ),
        ]

    def __str__(self) -> str:
        return f"evaluation {self.pk} ({self.kind}, {self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status not in ACTIVE

    @property
    def win_rate(self) -> dict | None:
        return (self.results or {}).get("win_rate")


class SampleSet(models.TextChoices):
    EVAL = "eval", "Held-out prompt"
    ADVERSARIAL = "adversarial", "Adversarial prompt"


class EvaluationSample(models.Model):
    """One prompt of an evaluation: both answers, their scores and the outcome for the policy."""

    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="samples")
    sample_set = models.CharField(max_length=12, choices=SampleSet.choices)
    prompt = models.ForeignKey("annotation.Prompt", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    adversarial_prompt = models.ForeignKey(
        "evaluation.AdversarialPrompt", null=True, blank=True, on_delete=models.SET_NULL, related_name="samples"
    )
    prompt_messages = models.JSONField(default=list)
    policy_response = models.TextField(blank=True)
    baseline_response = models.TextField(blank=True)
    policy_tokens = models.PositiveIntegerField(default=0)
    baseline_tokens = models.PositiveIntegerField(default=0)
    policy_score = models.FloatField(null=True, blank=True)
    baseline_score = models.FloatField(null=True, blank=True)
    outcome = models.FloatField(null=True, blank=True, help_text="1 policy wins, 0.5 tie, 0 baseline wins.")
    kl = models.FloatField(null=True, blank=True, help_text="Mean per-token KL(policy || reference) on this response.")
    harmlessness_score = models.FloatField(null=True, blank=True)
    flagged = models.BooleanField(default=False)
    flag_reasons = models.JSONField(default=list, blank=True)
    reviewed = models.BooleanField(default=False)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["run", "id"]
        indexes = [models.Index(fields=["run", "flagged", "reviewed"])]


class AdversarialCategory(models.TextChoices):
    INJECTION = "injection", "Prompt injection"
    LEAKAGE = "leakage", "Prompt leakage"
    JAILBREAK = "jailbreak", "Jailbreak"


class AdversarialPrompt(models.Model):
    """One editable prompt of a project's adversarial suite (seeded from the shipped suite)."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="adversarial_prompts")
    key = models.SlugField(max_length=80, help_text="Stable id within the project, e.g. inj-01.")
    category = models.CharField(max_length=12, choices=AdversarialCategory.choices)
    system_prompt = models.TextField(blank=True)
    text = models.TextField()
    flag_patterns = models.JSONField(
        default=list,
        blank=True,
        help_text="Regular expressions (case-insensitive); a response matching any of them is flagged.",
    )
    notes = models.CharField(max_length=500, blank=True)
    active = models.BooleanField(default=True)
    shipped = models.BooleanField(default=False, help_text="Came from the shipped suite file.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "category", "key"]
        constraints = [models.UniqueConstraint(fields=["project", "key"], name="one_adversarial_key")]

    def __str__(self) -> str:
        return f"{self.key} ({self.category})"

    def messages(self) -> list[dict[str, str]]:
        out = []
        if self.system_prompt:
            out.append({"role": "system", "content": self.system_prompt})
        out.append({"role": "user", "content": self.text})
        return out
