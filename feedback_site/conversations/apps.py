from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "feedback_site.conversations"
    verbose_name = "Conversations"

    def ready(self) -> None:
        from feedback_site.annotation.imports import register_kind
        from feedback_site.conversations.importers import import_trees
        from feedback_site.projects.models import ImportKind

        register_kind(ImportKind.CONVERSATIONS, import_trees)
