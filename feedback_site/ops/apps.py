from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "feedback_site.ops"
    label = "ops"
    verbose_name = "Operations: health, the ops page, site-wide management commands"
