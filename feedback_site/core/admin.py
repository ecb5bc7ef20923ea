"""Shared pieces of the Django admin.

The admin is for looking things up and for a few operator edits. Writes that carry business rules
(projects, memberships) go through the same services as the pages; records of history (judgments,
snapshots, model versions, imports, runs) are shown read-only so the admin cannot break lineage.
"""

from __future__ import annotations

from django.contrib import admin

admin.site.site_header = "Feedback loop administration"
admin.site.site_title = "Feedback loop admin"
admin.site.index_title = "Projects, data and runs"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable, never added, changed or deleted from the admin (services create these rows)."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class BigTableAdmin(ReadOnlyAdmin):
    """Read-only admin for tables that grow to millions of rows: no full COUNT(*) on every
    changelist, and no date hierarchy queries over the whole table."""

    show_full_result_count = False
    list_per_page = 50


def short(text: str, length: int = 80) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= length else text[: length - 1] + "…"


from feedback_site.core.models import AuditEntry  # noqa: E402  (the admin helpers above come first)


@admin.register(AuditEntry)
class AuditEntryAdmin(BigTableAdmin):
    list_display = ("created_at", "action", "actor", "project", "target_type", "target_id")
    list_filter = ("action",)
