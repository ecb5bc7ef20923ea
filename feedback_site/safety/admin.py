from django.contrib import admin

from feedback_site.safety.models import HeldPair, SafetyPolicy, SafetyScreen


@admin.register(SafetyPolicy)
class SafetyPolicyAdmin(admin.ModelAdmin):
    list_display = ["project", "enabled", "action", "use_default_rules", "classifier", "threshold"]


@admin.register(SafetyScreen)
class SafetyScreenAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "response", "verdict", "action", "matched_rule", "score", "review_status"]
    list_filter = ["verdict", "action", "review_status"]
    raw_id_fields = ["response", "classifier", "reviewed_by"]


@admin.register(HeldPair)
class HeldPairAdmin(admin.ModelAdmin):
    list_display = ["pair", "original_overlap", "created_at"]
    raw_id_fields = ["pair"]
