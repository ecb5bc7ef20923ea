from django.contrib import admin

from feedback_site.loop.models import Campaign, CampaignPair, Round, SimulatedAnnotator, SimulationRun


@admin.register(SimulatedAnnotator)
class SimulatedAnnotatorAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "name", "rule", "noise", "seed"]
    raw_id_fields = ["project", "user", "reward_model", "created_by"]


@admin.register(SimulationRun)
class SimulationRunAdmin(admin.ModelAdmin):
    list_display = ["id", "annotator", "target", "done", "status", "created_at"]
    raw_id_fields = ["annotator", "created_by"]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "name", "version_x", "version_y", "status", "pair_count"]
    raw_id_fields = ["project", "version_x", "version_y", "created_by"]


@admin.register(CampaignPair)
class CampaignPairAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "pair", "x_is_a"]
    raw_id_fields = ["campaign", "pair"]


@admin.register(Round)
class RoundAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "number", "stage", "promoted", "updated_at"]
    raw_id_fields = [
        "project",
        "policy",
        "simulated_annotator",
        "generation_run",
        "simulation_run",
        "snapshot",
        "reward_run",
        "training_run",
        "evaluation_run",
        "output_version",
        "created_by",
    ]
