"""Admin for prompts, responses, pairs, assignments and judgments.

These tables grow large and are the project's record of work, so they are read-only here: a
judgment is never edited or deleted, and the queue's counters (judgment_count, is_complete) must
only change through the annotation services that keep them consistent under concurrency.
"""

from __future__ import annotations

from django.contrib import admin

from feedback_site.annotation.models import Assignment, Judgment, Pair, Prompt, Response
from feedback_site.core.admin import BigTableAdmin, short


@admin.register(Prompt)
class PromptAdmin(BigTableAdmin):
    list_display = ["id", "project", "excerpt", "split", "import_batch", "created_at"]
    list_filter = ["split", "project"]
    search_fields = ["text", "system_prompt"]
    list_select_related = ["project"]
    raw_id_fields = ["project", "import_batch"]

    @admin.display(description="text")
    def excerpt(self, prompt) -> str:
        return short(prompt.text)


@admin.register(Response)
class ResponseAdmin(BigTableAdmin):
    list_display = ["id", "prompt_id", "excerpt", "model_version", "generation_run_id", "sample_index", "created_at"]
    list_filter = ["model_version__kind", "prompt__project"]
    search_fields = ["text"]
    list_select_related = ["model_version"]
    raw_id_fields = ["prompt", "model_version", "generation_run"]

    @admin.display(description="text")
    def excerpt(self, response) -> str:
        return short(response.text)


@admin.register(Pair)
class PairAdmin(BigTableAdmin):
    list_display = [
        "id",
        "project",
        "prompt_excerpt",
        "source",
        "overlap",
        "judgment_count",
        "is_complete",
        "priority",
        "prelabel",
        "created_at",
    ]
    list_filter = ["is_complete", "source", "prelabel", "project"]
    search_fields = ["prompt__text"]
    list_select_related = ["project", "prompt"]
    raw_id_fields = ["project", "prompt", "response_a", "response_b", "import_batch", "generation_run"]

    @admin.display(description="prompt")
    def prompt_excerpt(self, pair) -> str:
        return short(pair.prompt.text, 60)


@admin.register(Assignment)
class AssignmentAdmin(BigTableAdmin):
    list_display = ["id", "pair_id", "annotator", "status", "swapped", "leased_at", "expires_at", "finished_at"]
    list_filter = ["status", "swapped", "pair__project"]
    search_fields = ["annotator__username"]
    list_select_related = ["annotator"]
    raw_id_fields = ["pair", "annotator"]


@admin.register(Judgment)
class JudgmentAdmin(BigTableAdmin):
    """Judgments are never changed or deleted (no change/delete permission, for superusers too)."""

    list_display = [
        "id",
        "pair_id",
        "annotator",
        "choice",
        "preferred",
        "swapped",
        "strength",
        "time_spent_ms",
        "guideline_version",
        "accepted_after_expiry",
        "created_at",
    ]
    list_filter = ["preferred", "choice", "strength", "accepted_after_expiry", "pair__project"]
    search_fields = ["annotator__username", "rationale"]
    list_select_related = ["annotator", "guideline_version"]
    raw_id_fields = ["assignment", "pair", "annotator", "guideline_version"]
    date_hierarchy = "created_at"
