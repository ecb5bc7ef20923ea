from django.contrib import admin

from feedback_site.conversations.models import (
    BranchPoint,
    ConversationAssignment,
    ConversationResult,
    ConversationSnapshot,
    ConversationTask,
)


@admin.register(ConversationTask)
class ConversationTaskAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "source", "turns", "candidates", "overlap", "submitted_count", "is_complete"]
    raw_id_fields = ["prompt", "opening", "policy"]


@admin.register(ConversationAssignment)
class ConversationAssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "annotator", "status", "expires_at"]
    raw_id_fields = ["task", "annotator"]


@admin.register(BranchPoint)
class BranchPointAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "annotator", "turn_index", "status", "attempts", "judged_at"]
    raw_id_fields = ["task", "assignment", "annotator", "parent", "chosen", "continued_with", "next_user_node"]


@admin.register(ConversationResult)
class ConversationResultAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "annotator", "created_at"]
    raw_id_fields = ["assignment", "task", "annotator", "leaf"]


@admin.register(ConversationSnapshot)
class ConversationSnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "number", "content_hash", "example_count", "branch_point_count", "created_at"]
