"""Admin for snapshots: immutable and content-hashed, so shown read-only (no change, no delete;
a model version may point at a snapshot, and its hash is the dataset's identity)."""

from __future__ import annotations

from django.contrib import admin

from feedback_site.core.admin import ReadOnlyAdmin
from feedback_site.snapshots.models import Snapshot


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "project",
        "number",
        "short_hash",
        "aggregation",
        "options",
        "include_prelabelled",
        "pair_count",
        "preference_count",
        "judgment_count",
        "dropped_count",
        "created_by",
        "created_at",
    ]
    list_display_links = ["id", "number"]
    list_filter = ["aggregation", "include_prelabelled", "project"]
    search_fields = ["content_hash", "note", "project__name"]
    list_select_related = ["project", "created_by"]
    raw_id_fields = ["project", "created_by"]
    date_hierarchy = "created_at"

    @admin.display(description="hash", ordering="content_hash")
    def short_hash(self, snapshot) -> str:
        return snapshot.content_hash[:12]
