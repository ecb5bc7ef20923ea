"""The closed loop: simulated annotators, blind human A/B campaigns and RLHF rounds.

* `SimulatedAnnotator`: a real user (Membership.is_simulated) whose judgments come from a
  documented rule or a reward-model version (`rlhf.simulated`), with label noise and a seed.
  `SimulationRun` is one "judge up to N pairs" job of it.
* `Campaign`: two policy versions answer the same evaluation prompts; one response of each per
  prompt forms a pair (random A/B) in the normal annotator queue. `CampaignPair` remembers which
  side is version X; nothing the annotator sees does.
* `Round`: generate -> annotate -> snapshot -> train -> evaluate -> promote, one row per round,
  advanced by `services.round_advance` (idempotent).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class SimulatedRule(models.TextChoices):
    ENDS_WITH_QUESTION = "ends_with_question", "Prefers the answer that ends with a question to the user"
    ASKS_QUESTION = "asks_question", "Prefers the answer that asks the user a question"
    SHORTER = "shorter", "Prefers the shorter answer"
    LONGER = "longer", "Prefers the longer answer"
    KEYWORD = "keyword", "Prefers the answer that uses a keyword more often"
    REWARD_MODEL = "reward_model", "Prefers the answer a reward-model version scores higher"


class SimulatedAnnotator(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="simulated_annotators")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="simulated_annotator")
    name = models.CharField(max_length=100)
    rule = models.CharField(max_length=20, choices=SimulatedRule.choices)
    keyword = models.CharField(max_length=100, blank=True)
    reward_model = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    noise = models.FloatField(default=0.1, help_text="Probability that a decisive label is flipped (0 to 0.5).")
    seed = models.PositiveIntegerField(default=0)
    tie_policy = models.CharField(
        max_length=10, default="random", choices=[("random", "Pick a side by a seeded coin"), ("tie", "Report a tie")]
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="one_simulated_name_per_project")]

    def __str__(self) -> str:
        return f"simulated annotator {self.name} ({self.rule})"

    def annotator_config(self) -> dict:
        """The `rlhf.simulated.SimulatedAnnotator` settings of this annotator."""
        return {"rule": self.rule, "noise": self.noise, "seed": self.seed, "keyword": self.keyword, "tie_policy": self.tie_policy}


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class SimulationRun(models.Model):
    annotator = models.ForeignKey(SimulatedAnnotator, on_delete=models.CASCADE, related_name="runs")
    target = models.PositiveIntegerField(help_text="Judgments to make at most.")
    done = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    message = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"simulation {self.pk}: {self.done}/{self.target} ({self.status})"


class CampaignStatus(models.TextChoices):
    GENERATING = "generating", "Generating responses"
    ANNOTATING = "annotating", "In the annotator queue"
    FAILED = "failed", "Failed"


class Campaign(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=200)
    version_x = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    version_y = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    prompt_ids = models.JSONField(help_text="Evaluation prompts frozen at launch.")
    sampling = models.JSONField(default=dict)
    overlap = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=12, choices=CampaignStatus.choices, default=CampaignStatus.GENERATING)
    message = models.TextField(blank=True)
    pair_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.CheckConstraint(condition=~Q(version_x=models.F("version_y")), name="campaign_two_versions")]

    def __str__(self) -> str:
        return f"campaign {self.pk} ({self.name})"


class CampaignPair(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="campaign_pairs")
    pair = models.OneToOneField("annotation.Pair", on_delete=models.CASCADE, related_name="campaign_link")
    x_is_a = models.BooleanField(help_text="True when version X wrote response A.")

    class Meta:
        ordering = ["id"]


class Stage(models.TextChoices):
    GENERATE = "generate", "Generate"
    ANNOTATE = "annotate", "Annotate"
    SNAPSHOT = "snapshot", "Snapshot"
    TRAIN = "train", "Train"
    EVALUATE = "evaluate", "Evaluate"
    PROMOTE = "promote", "Promote"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


STAGE_ORDER = [Stage.GENERATE, Stage.ANNOTATE, Stage.SNAPSHOT, Stage.TRAIN, Stage.EVALUATE, Stage.PROMOTE, Stage.DONE]


class Round(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField()
    config = models.JSONField(help_text="Method, generation, training and promotion settings, defaults filled in.")
    policy = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.PROTECT, related_name="+", help_text="The policy the round starts from."
    )
    simulated_annotator = models.ForeignKey(SimulatedAnnotator, null=True, blank=True, on_delete=models.PROTECT, related_name="rounds")
    stage = models.CharField(max_length=10, choices=Stage.choices, default=Stage.GENERATE)
    generation_run = models.ForeignKey("generation.GenerationRun", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    simulation_run = models.ForeignKey(SimulationRun, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    snapshot = models.ForeignKey("snapshots.Snapshot", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reward_run = models.ForeignKey("training.TrainingRun", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    training_run = models.ForeignKey("training.TrainingRun", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    evaluation_run = models.ForeignKey("evaluation.EvaluationRun", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    output_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    promoted = models.BooleanField(null=True, blank=True, help_text="True promoted, False kept the old policy, None undecided.")
    message = models.TextField(blank=True)
    history = models.JSONField(default=list, blank=True, help_text="[{stage, at, note}] of every transition.")
    # Set while one caller advances the round (see services.round_advance): a second caller backs off.
    claimed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="one_round_number"),
            models.UniqueConstraint(fields=["project"], condition=~Q(stage__in=["done", "failed"]), name="one_active_round_per_project"),
        ]

    def __str__(self) -> str:
        return f"round {self.number} of project {self.project_id} ({self.stage})"

    @property
    def is_terminal(self) -> bool:
        return self.stage in (Stage.DONE, Stage.FAILED)
