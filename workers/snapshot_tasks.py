"""Celery task of the snapshots app: building a snapshot's files is light, streaming work (no
model), so its spec (workers/task_names.py) puts it on the `default` queue."""

from __future__ import annotations

from workers.celery_app import task
from workers.task_names import SNAPSHOT_BUILD


@task(SNAPSHOT_BUILD)
def build_snapshot(snapshot_id: int) -> str | None:
    """Idempotent: a ready or failed snapshot is left alone; a pending or running one (say,
    redelivered after its worker died) is built again from the start into a fresh temp folder."""
    from feedback_site.snapshots.services import snapshot_build

    snapshot = snapshot_build(snapshot_id)
    return snapshot.status if snapshot is not None else None
