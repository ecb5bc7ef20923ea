"""Celery task of the snapshots app: building a snapshot's files is light, streaming work (no
model), so `snapshots.build` goes to the `default` queue (celery_app's catch-all route)."""

from __future__ import annotations

from workers.celery_app import app


@app.task(name="snapshots.build", acks_late=True)
def build_snapshot(snapshot_id: int) -> str | None:
    """Idempotent: a ready or failed snapshot is left alone; a pending or running one (say,
    redelivered after its worker died) is built again from the start into a fresh temp folder."""
    from feedback_site.snapshots.services import snapshot_build

    snapshot = snapshot_build(snapshot_id)
    return snapshot.status if snapshot is not None else None
