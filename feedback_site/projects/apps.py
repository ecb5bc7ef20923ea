from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "feedback_site.projects"
    label = "projects"
