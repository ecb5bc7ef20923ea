"""Admin for training runs and their metric points: shown read-only. Runs are launched and cancelled
on the project's Training page (or the API) and written by the worker through the services, so the
admin cannot leave a run in a state the worker does not expect."""

from __future__ import annotations

import json

from django.contrib import admin

from feedback_site.core.admin import BigTableAdmin, ReadOnlyAdmin, short
from feedback_site.training.models import TrainingMetric, TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "project",
        "method",
        "status",
        "progress",
        "attempts",
        "snapshot",
        "demonstration_snapshot",
        "parent",
        "reward_model",
        "output_version",
        "created_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "method", "cancel_requested", "project"]
    search_fields = ["message", "config_hash", "launch_key", "project__name"]
    list_select_related = ["project", "snapshot", "demonstration_snapshot", "parent", "reward_model", "output_version", "created_by"]
    raw_id_fields = ["project", "snapshot", "demonstration_snapshot", "parent", "reward_model", "output_version", "created_by"]
    date_hierarchy = "created_at"

    @admin.display(description="progress")
    def progress(self, run) -> str:
        return f"{run.step}/{run.total_steps}"


@admin.register(TrainingMetric)
class TrainingMetricAdmin(BigTableAdmin):
    list_display = ["id", "run", "step", "values_short", "created_at"]
    list_filter = ["run__method"]
    list_select_related = ["run"]
    raw_id_fields = ["run"]
    ordering = ["-id"]

    @admin.display(description="values")
    def values_short(self, point) -> str:
        return short(json.dumps(point.values, sort_keys=True), 120)
