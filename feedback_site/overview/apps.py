from django.apps import AppConfig


class OverviewConfig(AppConfig):
    name = "feedback_site.overview"
    label = "overview"
    verbose_name = "Project overview: the pages that show or change several apps' data"
