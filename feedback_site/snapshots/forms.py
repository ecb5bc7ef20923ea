"""Forms of the Snapshots page, each checked again by the service it calls (a service error is
shown on the field it names)."""

from __future__ import annotations

from django import forms

from feedback_site.projects.forms import ServiceErrorForm
from feedback_site.snapshots import services

AGGREGATION_LABELS = {
    "majority": "Majority vote",
    "gold_weighted": "Weighted by gold accuracy",
    "dawid_skene": "Dawid–Skene estimate",
}
OPTION_FIELDS = ("exclude_too_fast", "exclude_position_biased", "exclude_paused", "include_simulated")


class SnapshotForm(ServiceErrorForm):
    aggregation = forms.ChoiceField(
        choices=[(rule, AGGREGATION_LABELS.get(rule, rule)) for rule in services.AGGREGATION_RULES],
        initial="majority",
    )
    include_prelabelled = forms.BooleanField(
        required=False,
        initial=True,
        label="Include pre-labelled pairs",
        help_text="Imported pairs that came with a label and have no judgments use their import label.",
    )
    exclude_too_fast = forms.BooleanField(
        required=False, label="Leave out too-fast judgments", help_text="Judgments made faster than the project's minimum seconds."
    )
    exclude_position_biased = forms.BooleanField(
        required=False,
        label="Leave out position-biased annotators",
        help_text="Annotators whose left-choice rate fails a binomial test at p < 0.05.",
    )
    exclude_paused = forms.BooleanField(required=False, label="Leave out paused annotators")
    include_simulated = forms.BooleanField(
        required=False,
        label="Use simulated annotators' judgments",
        help_text="Off by default: simulated judgments stay in the raw file only.",
    )
    note = forms.CharField(required=False, max_length=500, help_text="Optional, e.g. “round 1, before DPO”.")

    service_error_fields = {"bad_aggregation": "aggregation", "bad_note": "note"}

    def service_kwargs(self) -> dict:
        data = dict(self.cleaned_data)
        data["options"] = {key: data.pop(key) for key in OPTION_FIELDS}
        return data


class RatingQueueForm(ServiceErrorForm):
    overlap = forms.IntegerField(label="Ratings per answer", help_text="From distinct annotators (1 to 20).")
    generation_run_id = forms.IntegerField(
        required=False,
        label="Only answers of generation run #",
        help_text="Leave empty for every answer to a training prompt. Answers the safety screen hides are never queued.",
    )

    service_error_fields = {"bad_overlap": "overlap", "bad_generation_run_id": "generation_run_id"}


class ConversationQueueForm(ServiceErrorForm):
    turns = forms.IntegerField(initial=3, label="Turns", help_text="Assistant turns each annotator judges (1 to 10).")
    candidates = forms.IntegerField(initial=2, label="Candidates per turn", help_text="Replies the policy samples at each turn (2 to 9).")
    overlap = forms.IntegerField(label="Annotators per conversation", help_text="Each walks their own branch of the tree (1 to 20).")
    allow_user_turns = forms.BooleanField(
        required=False,
        initial=True,
        label="Annotators write the next user turn",
        help_text="Needed for more than one turn unless the prompts script their follow-ups (metadata.followups).",
    )
    allow_edits = forms.BooleanField(required=False, initial=False, label="Annotators may edit the chosen reply")

    service_error_fields = {
        "bad_turns": "turns",
        "bad_candidates": "candidates",
        "bad_overlap": "overlap",
        "bad_followups": "allow_user_turns",
        "no_prompts": "__all__",
        "bad_policy": "__all__",
    }
