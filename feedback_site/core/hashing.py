"""Content hashes of stored files (snapshots, demonstration snapshots, model artifacts), and the
pseudonyms that stand for annotators in exports and staff pages."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from django.conf import settings

CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks so a large artifact never sits in memory whole."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def pseudonym(project_id: int, user_id: int) -> str:
    """Stable within a project, unlinkable across projects without the server's secret key."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"{project_id}:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"ann-{digest[:16]}"
