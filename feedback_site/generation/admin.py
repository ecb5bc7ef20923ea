"""Admin for generation runs: shown read-only; runs are launched and cancelled on the project's
Generate page (or the API), so the worker and the page always agree on a run's state."""

from __future__ import annotations

from django.contrib import admin

from feedback_site.core.admin import ReadOnlyAdmin
from feedback_site.generation.models import GenerationRun


@admin.register(GenerationRun)
class GenerationRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "project",
        "policy",
        "status",
        "k",
        "prompt_count",
        "progress",
        "response_count",
        "pair_count",
        "created_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "pairing", "project"]
    search_fields = ["message", "config_hash", "project__name"]
    list_select_related = ["project", "policy", "created_by"]
    raw_id_fields = ["project", "policy", "created_by"]
    date_hierarchy = "created_at"

    @admin.display(description="prompts")
    def prompt_count(self, run) -> int:
        return len(run.prompt_ids or [])

    @admin.display(description="progress")
    def progress(self, run) -> str:
        return f"{run.progress_done}/{run.progress_total}"
