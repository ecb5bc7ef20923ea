"""Prompts, responses, the pairs annotators compare, their leases (assignments) and judgments."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Split(models.TextChoices):
    TRAIN = "train", "Training"
    EVAL = "eval", "Evaluation (held out)"


class Prompt(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="prompts")
    import_batch = models.ForeignKey("projects.ImportBatch", null=True, blank=True, on_delete=models.PROTECT, related_name="prompts")
    text = models.TextField(help_text="The final user turn.")
    system_prompt = models.TextField(blank=True)
    history = models.JSONField(default=list, blank=True, help_text="Earlier turns: [{role, content}, ...].")
    metadata = models.JSONField(default=dict, blank=True)
    split = models.CharField(max_length=10, choices=Split.choices, default=Split.TRAIN)
    # Sanitised HTML of `text` and of each history turn, rendered once so the annotator API does
    # not run markdown per request. NULL = not rendered yet (rows from bulk_create): the queue
    # renders and stores it the first time the prompt is shown (see annotation.rendered).
    text_html = models.TextField(null=True, blank=True, editable=False)
    history_html = models.JSONField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["project", "split", "id"])]

    def __str__(self) -> str:
        return self.text[:80]

    def messages(self) -> list[dict[str, str]]:
        """The conversation a policy answers: system prompt, history, then this user turn."""
        out: list[dict[str, str]] = []
        if self.system_prompt:
            out.append({"role": "system", "content": self.system_prompt})
        out.extend({"role": m["role"], "content": m["content"]} for m in self.history)
        out.append({"role": "user", "content": self.text})
        return out


class Response(models.Model):
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="responses")
    text = models.TextField()
    model_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="responses")
    generation_run = models.ForeignKey(
        "generation.GenerationRun", null=True, blank=True, on_delete=models.PROTECT, related_name="responses"
    )
    sample_index = models.PositiveSmallIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    # Sanitised HTML of `text` (NULL = not rendered yet; filled on first display).
    text_html = models.TextField(null=True, blank=True, editable=False)
    # Shown to annotators above the response, which stays blurred until they click (the payload's
    # `safety_flag`); empty = shown normally. The safety screen writes it (`services.responses_warn`).
    warning = models.TextField(blank=True, default="", db_default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text[:80]


class Preference(models.TextChoices):
    """A judgment in canonical terms (which stored response), independent of display order."""

    A = "a", "Response A"
    B = "b", "Response B"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"


class PairSource(models.TextChoices):
    GENERATED = "generated", "Generated"
    IMPORTED = "imported", "Imported"


class Pair(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="pairs")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="pairs")
    response_a = models.ForeignKey(Response, on_delete=models.PROTECT, related_name="+")
    response_b = models.ForeignKey(Response, on_delete=models.PROTECT, related_name="+")
    overlap = models.PositiveSmallIntegerField(help_text="Judgments needed from distinct annotators; 0 = not queued.")
    judgment_count = models.PositiveIntegerField(default=0)
    # Denormalised so the queue's index only holds pairs that still need work.
    is_complete = models.BooleanField(default=False)
    priority = models.IntegerField(default=0, help_text="Higher is served first.")
    # Gold pairs carry a known answer; they look like any other pair to the annotator.
    is_gold = models.BooleanField(default=False)
    gold_label = models.CharField(max_length=10, choices=Preference.choices, blank=True)
    prelabel = models.CharField(max_length=10, choices=Preference.choices, blank=True, help_text="Label that came with an import.")
    source = models.CharField(max_length=10, choices=PairSource.choices)
    import_batch = models.ForeignKey("projects.ImportBatch", null=True, blank=True, on_delete=models.PROTECT, related_name="pairs")
    generation_run = models.ForeignKey("generation.GenerationRun", null=True, blank=True, on_delete=models.PROTECT, related_name="pairs")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(F("project"), F("priority").desc(), F("id"), name="pair_queue_order", condition=Q(is_complete=False)),
            # Gold pairs are served outside the normal queue (every annotator may get each once).
            models.Index(fields=["project", "id"], name="pair_gold", condition=Q(is_gold=True)),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(response_a=F("response_b")), name="pair_of_two_responses"),
            models.CheckConstraint(condition=Q(judgment_count__lte=F("overlap")), name="pair_never_over_judged"),
        ]

    def __str__(self) -> str:
        return f"pair {self.pk} ({self.judgment_count}/{self.overlap})"


class AssignmentStatus(models.TextChoices):
    LEASED = "leased", "Leased"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"


class Lease(models.Model):
    """What every task kind's lease row holds beside its task and annotator (the queue's
    `TaskKind.lease_model` contract, `annotation.queue`): its status and its times. An expired
    lease stays `leased` with a past `expires_at` and simply stops counting against its task."""

    status = models.CharField(max_length=10, choices=AssignmentStatus.choices, default=AssignmentStatus.LEASED)
    leased_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class Assignment(Lease):
    """One annotator's lease on one pair. An annotator gets a pair at most once (unique), so a
    skipped or judged pair never comes back to them; an expired lease stays `leased` with a past
    `expires_at` and simply stops counting against the pair's overlap."""

    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="assignments")
    swapped = models.BooleanField(help_text="True when response B was shown on the left.")

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["pair", "annotator"], name="pair_once_per_annotator")]
        indexes = [
            models.Index(fields=["pair", "status", "expires_at"], name="assignment_active_leases"),
            models.Index(fields=["annotator", "status", "expires_at"], name="assignment_annotator_open"),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} of pair {self.pair_id} to {self.annotator_id} ({self.status})"


class DisplayChoice(models.TextChoices):
    LEFT = "left", "Left is better"
    RIGHT = "right", "Right is better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"


class Strength(models.TextChoices):
    SLIGHT = "slight", "Slightly better"
    CLEAR = "clear", "Clearly better"
    MUCH = "much", "Much better"


class Judgment(models.Model):
    """Never deleted or edited: a second submit of the same assignment returns this row."""

    assignment = models.OneToOneField(Assignment, on_delete=models.PROTECT, related_name="judgment")
    pair = models.ForeignKey(Pair, on_delete=models.PROTECT, related_name="judgments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="judgments")
    choice = models.CharField(max_length=10, choices=DisplayChoice.choices, help_text="What the annotator clicked.")
    preferred = models.CharField(max_length=10, choices=Preference.choices, help_text="The choice mapped back to A/B.")
    swapped = models.BooleanField(help_text="Order shown: True when response B was on the left.")
    strength = models.CharField(max_length=10, choices=Strength.choices, blank=True)
    criteria = models.JSONField(default=dict, blank=True, help_text="Per-criterion votes in canonical a/b/tie terms.")
    rationale = models.TextField(blank=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    guideline_version = models.ForeignKey("projects.GuidelineVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    accepted_after_expiry = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["pair", "id"]), models.Index(fields=["annotator", "created_at"])]

    def __str__(self) -> str:
        return f"judgment {self.pk}: {self.preferred}"
