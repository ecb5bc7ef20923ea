from django.apps import AppConfig


class PlaygroundConfig(AppConfig):
    name = "feedback_site.playground"
    verbose_name = "Playground"
