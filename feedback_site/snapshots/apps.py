from django.apps import AppConfig


class SnapshotsConfig(AppConfig):
    name = "feedback_site.snapshots"
    label = "snapshots"
