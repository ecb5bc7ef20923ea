from django.contrib import admin

from feedback_site.demonstrations.models import Demonstration, DemonstrationAssignment, DemonstrationSnapshot, DemonstrationTask


@admin.register(DemonstrationTask)
class DemonstrationTaskAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "prompt", "mode", "overlap", "submitted_count", "is_complete"]
    raw_id_fields = ["prompt", "response"]


@admin.register(DemonstrationAssignment)
class DemonstrationAssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "annotator", "status", "expires_at"]
    raw_id_fields = ["task", "annotator"]


@admin.register(Demonstration)
class DemonstrationAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "annotator", "created_at"]
    raw_id_fields = ["assignment", "task", "annotator"]


@admin.register(DemonstrationSnapshot)
class DemonstrationSnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "number", "content_hash", "demonstration_count", "created_at"]
