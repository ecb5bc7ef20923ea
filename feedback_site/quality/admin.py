"""Admin for adjudications: read-only here, because a change must go through the service (it
writes the audit entry that keeps the history)."""

from __future__ import annotations

from django.contrib import admin

from feedback_site.core.admin import ReadOnlyAdmin
from feedback_site.quality.models import Adjudication


@admin.register(Adjudication)
class AdjudicationAdmin(ReadOnlyAdmin):
    list_display = ["id", "pair", "label", "decided_by", "decided_at"]
    list_filter = ["label"]
    search_fields = ["note"]
    list_select_related = ["pair", "decided_by"]
    raw_id_fields = ["pair", "decided_by"]
