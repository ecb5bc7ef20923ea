from django.apps import AppConfig


class SafetyConfig(AppConfig):
    name = "feedback_site.safety"
    verbose_name = "Safety screen"
