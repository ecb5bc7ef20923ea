"""Admin for model versions. Versions are immutable (lineage must never change), so the admin
only shows them; promotion and registration happen through the registry services."""

from __future__ import annotations

from django.contrib import admin

from feedback_site.core.admin import ReadOnlyAdmin
from feedback_site.registry.models import ModelVersion, PolicyPointerChange


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "kind", "number", "name", "status", "base_model", "parent", "snapshot", "created_at"]
    list_display_links = ["id", "name"]
    list_filter = ["kind", "status", "project"]
    search_fields = ["name", "artifact_uri", "base_model", "config_hash", "code_version", "project__name"]
    list_select_related = ["project", "parent", "snapshot"]
    raw_id_fields = ["project", "parent", "snapshot", "created_by"]
    date_hierarchy = "created_at"


@admin.register(PolicyPointerChange)
class PolicyPointerChangeAdmin(ReadOnlyAdmin):
    """The pointer's history is written by version_promote / version_rollback only."""

    list_display = ["id", "project", "action", "from_version", "to_version", "actor", "created_at"]
    list_filter = ["action", "project"]
    search_fields = ["reason", "project__name"]
    list_select_related = ["project", "from_version", "to_version", "actor"]
    raw_id_fields = ["project", "from_version", "to_version", "actor"]
