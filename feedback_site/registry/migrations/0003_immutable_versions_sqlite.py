"""The immutability trigger of 0002 for SQLite, the embedded default (`make run`).

0002 installs it on PostgreSQL only; without this one a SQLite database let an UPDATE that bypasses
ModelVersion.save() rewrite a version's artifact or lineage. Django rebuilds a SQLite table (and so
drops its triggers) on most ALTERs: a later migration that alters this table on SQLite must create
the trigger again (tests/registry checks it on both databases).
"""

from importlib import import_module

from django.db import migrations

IMMUTABLE_COLUMNS = import_module("feedback_site.registry.migrations.0002_immutable_versions_pointer_history").IMMUTABLE_COLUMNS
CHECKS = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in IMMUTABLE_COLUMNS)
CREATE_TRIGGER = f"""
CREATE TRIGGER IF NOT EXISTS registry_modelversion_immutable BEFORE UPDATE ON registry_modelversion
FOR EACH ROW WHEN {CHECKS}
BEGIN
    SELECT RAISE(ABORT, 'model version is immutable: its artifact, lineage and metrics cannot change');
END
"""
DROP_TRIGGER = "DROP TRIGGER IF EXISTS registry_modelversion_immutable"


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(CREATE_TRIGGER, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(DROP_TRIGGER, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("registry", "0002_immutable_versions_pointer_history"),
    ]

    operations = [
        migrations.RunPython(create_trigger, drop_trigger),
    ]
