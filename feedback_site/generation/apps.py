from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "feedback_site.generation"
    label = "generation"
