from django.apps import AppConfig


class RankingsConfig(AppConfig):
    name = "feedback_site.rankings"
    verbose_name = "Rankings"

    def ready(self) -> None:
        from feedback_site.annotation.imports import register_kind
        from feedback_site.projects.models import ImportKind
        from feedback_site.rankings.imports import import_for_imports_page

        register_kind(ImportKind.RANKINGS, import_for_imports_page)
