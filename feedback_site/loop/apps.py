from django.apps import AppConfig


class LoopConfig(AppConfig):
    name = "feedback_site.loop"
    verbose_name = "Closed loop: simulated annotators, blind A/B campaigns, rounds"
