"""Frozen JSONL files: written once, atomically, named and checked by the sha256 of their bytes.

Demonstration and rating snapshots are such files (preference snapshots have their own exporter,
which also writes Parquet). A file is the canonical JSON of its rows, one per line, so equal rows
give equal bytes and an equal hash; it is written to a temporary name and renamed, so a reader
never sees half a file; and every reader goes through `verified_path`, so a download or a
training run never reads a file that changed after it was frozen.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.db import transaction

from feedback_site.core.errors import Conflict
from feedback_site.core.hashing import file_sha256


def jsonl_bytes(rows: Iterable[dict]) -> tuple[bytes, str]:
    """(the file's bytes, their sha256): canonical JSON, keys sorted, one row a line."""
    body = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows).encode()
    return body, hashlib.sha256(body).hexdigest()


def write_atomically(relative: Path, body: bytes) -> None:
    """Write `body` at ARTIFACTS_DIR/`relative` through a temporary file and a rename."""
    target = Path(settings.ARTIFACTS_DIR) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(body)
    tmp.replace(target)


def verified_path(relative: str, content_hash: str, what: str) -> Path:
    """ARTIFACTS_DIR/`relative` after checking its sha256 is `content_hash`; Conflict naming
    `what` (e.g. "rating snapshot 3") when the file is missing or changed."""
    path = Path(settings.ARTIFACTS_DIR) / relative
    if not path.is_file() or file_sha256(path) != content_hash:
        raise Conflict(
            f"{what}'s file {relative} is missing or does not match its recorded hash; restore it from backup",
            code="corrupt_snapshot",
        )
    return path


def freeze_rows(*, model, project, folder: str, rows: list[dict], actor, **fields):
    """Freeze `rows` into the project's next numbered snapshot of `model` (a model with project,
    number, content_hash, path and created_by, plus `fields`). Returns (snapshot, created): the
    same content as the latest snapshot returns that one instead of a new number."""
    body, content_hash = jsonl_bytes(rows)
    with transaction.atomic():
        # Numbers are per project: lock the project so two concurrent freezes cannot take one.
        type(project).objects.select_for_update().filter(pk=project.pk).first()
        latest = model.objects.filter(project=project).order_by("-number").first()
        if latest is not None and latest.content_hash == content_hash:
            return latest, False
        number = (latest.number + 1) if latest else 1
        relative = Path(folder) / f"project-{project.pk}" / f"snapshot-{number}-{content_hash[:12]}.jsonl"
        write_atomically(relative, body)
        snapshot = model.objects.create(
            project=project, number=number, content_hash=content_hash, path=str(relative), created_by=actor, **fields
        )
        return snapshot, True
