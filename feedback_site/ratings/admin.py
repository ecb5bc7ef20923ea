from django.contrib import admin

from feedback_site.ratings.models import Rating, RatingAssignment, RatingSnapshot, RatingTask


@admin.register(RatingTask)
class RatingTaskAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "response", "overlap", "submitted_count", "is_complete"]
    raw_id_fields = ["response"]


@admin.register(RatingAssignment)
class RatingAssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "annotator", "status", "expires_at"]
    raw_id_fields = ["task", "annotator"]


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "annotator", "label", "created_at"]
    raw_id_fields = ["assignment", "task", "annotator"]


@admin.register(RatingSnapshot)
class RatingSnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "number", "content_hash", "example_count", "desirable_count", "undesirable_count", "created_at"]
