from django.apps import AppConfig


class QualityConfig(AppConfig):
    name = "feedback_site.quality"
