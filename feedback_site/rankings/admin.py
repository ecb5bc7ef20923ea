from django.contrib import admin

from feedback_site.rankings.models import Ranking, RankingAssignment, RankingTask


@admin.register(RankingTask)
class RankingTaskAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "prompt", "overlap", "submitted_count", "is_complete", "is_gold", "source"]
    raw_id_fields = ["prompt", "generation_run", "import_batch"]


@admin.register(RankingAssignment)
class RankingAssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "annotator", "status", "expires_at"]
    raw_id_fields = ["task", "annotator"]


@admin.register(Ranking)
class RankingAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "annotator", "order_key", "all_unacceptable", "created_at"]
    raw_id_fields = ["assignment", "task", "annotator"]
