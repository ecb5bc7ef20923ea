"""Verify every artifact the database names: each snapshot's files against their recorded
SHA-256, each local model version's folder against its recorded content hash.

    manage.py check_artifacts [--project ID]

Exits 1 listing every problem (missing folder, changed file); used after a restore
(scripts/restore.sh) and usable at any time.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from feedback_site.core.errors import ServiceError


class Command(BaseCommand):
    help = "Verify snapshot files and model-version artifacts against their recorded content hashes."

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, default=None, help="Only this project.")

    def handle(self, *args, project=None, **options):
        from feedback_site.registry import artifacts
        from feedback_site.registry.models import ModelVersion
        from feedback_site.registry.services import version_artifact_path
        from feedback_site.snapshots.models import Snapshot, SnapshotStatus
        from feedback_site.snapshots.services import DOWNLOADS, snapshot_file

        problems: list[str] = []
        snapshots = Snapshot.objects.filter(status=SnapshotStatus.READY).order_by("project_id", "number")
        versions = ModelVersion.objects.order_by("project_id", "kind", "number")
        if project is not None:
            snapshots, versions = snapshots.filter(project_id=project), versions.filter(project_id=project)
        checked_snapshots = checked_versions = 0
        for snapshot in snapshots:
            for kind, (name, _) in DOWNLOADS.items():
                if name not in snapshot.files:
                    continue
                try:
                    snapshot_file(snapshot, kind)
                except ServiceError as error:
                    problems.append(f"project {snapshot.project_id} snapshot {snapshot.number}: {error.message}")
            checked_snapshots += 1
        for version in versions:
            if not artifacts.is_local_artifact(version.artifact_uri):
                continue  # builtin:… models have no folder here
            try:
                version_artifact_path(version, verify=bool(version.artifact_sha256))
            except ServiceError as error:
                problems.append(f"project {version.project_id} {version.kind} v{version.number}: {error.message}")
            checked_versions += 1
        if problems:
            raise CommandError("artifact check failed:\n" + "\n".join(problems))
        self.stdout.write(f"check_artifacts: {checked_snapshots} snapshot(s) and {checked_versions} model version(s) verified")
