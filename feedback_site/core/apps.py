from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "feedback_site.core"
    label = "core"
    verbose_name = "Core"
