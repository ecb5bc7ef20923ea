from django.apps import AppConfig


class DemonstrationsConfig(AppConfig):
    name = "feedback_site.demonstrations"
    verbose_name = "Demonstrations"
