from django.apps import AppConfig


class QualityConfig(AppConfig):
    name = "feedback_site.quality"

    def ready(self):
        from django.db.backends.signals import connection_created

        from feedback_site.quality.db import register_sqlite_functions

        # The dashboard's median is an aggregate SQLite lacks; every new SQLite connection gets it.
        connection_created.connect(register_sqlite_functions, dispatch_uid="quality-sqlite-functions")
