from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "feedback_site.registry"
    label = "registry"
