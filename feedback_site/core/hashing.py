"""Content hashes of stored files (snapshots, demonstration snapshots, model artifacts)."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks so a large artifact never sits in memory whole."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()
