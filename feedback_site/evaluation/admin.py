"""Admin for evaluation runs, their samples and the adversarial suite. Runs and samples are
results: read-only here (review happens on the review page, which audits it). Adversarial prompts
are edited on the suite page, which validates patterns and audits edits, so they are read-only too."""

from __future__ import annotations

from django.contrib import admin

from feedback_site.core.admin import ReadOnlyAdmin
from feedback_site.evaluation.models import AdversarialPrompt, EvaluationRun, EvaluationSample


@admin.register(EvaluationRun)
class EvaluationRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "kind", "status", "policy", "baseline", "reward_model", "trigger", "created_at"]
    list_filter = ["kind", "status", "trigger", "project"]
    search_fields = ["message", "project__name"]
    list_select_related = ["project", "policy", "baseline", "reward_model"]
    raw_id_fields = ["project", "policy", "baseline", "reference", "reward_model", "harmlessness_model", "training_run", "created_by"]


@admin.register(EvaluationSample)
class EvaluationSampleAdmin(ReadOnlyAdmin):
    list_display = ["id", "run", "sample_set", "outcome", "flagged", "reviewed"]
    list_filter = ["sample_set", "flagged", "reviewed"]
    search_fields = ["policy_response", "baseline_response"]
    raw_id_fields = ["run", "prompt", "adversarial_prompt", "reviewed_by"]


@admin.register(AdversarialPrompt)
class AdversarialPromptAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "key", "category", "active", "shipped", "updated_at"]
    list_filter = ["category", "active", "shipped", "project"]
    search_fields = ["key", "text", "system_prompt"]
    raw_id_fields = ["project"]
