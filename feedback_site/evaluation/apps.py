from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    name = "feedback_site.evaluation"
