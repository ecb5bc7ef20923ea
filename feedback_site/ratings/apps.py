from django.apps import AppConfig


class RatingsConfig(AppConfig):
    name = "feedback_site.ratings"
    verbose_name = "Ratings"
