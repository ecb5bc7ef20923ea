"""Model artifacts on disk: content hashing, verification and a streamed tar download.

No torch here: the web process serves downloads. A version's artifact is a folder written once
by training (`out_dir/final/`: weights or a LoRA adapter, tokenizer, `manifest.json`). Its
content hash (sha256 over every file's relative path and sha256) is recorded at registration and
recomputed before the folder is served or loaded, so a changed or truncated artifact is refused
instead of silently used.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

from feedback_site.core.hashing import CHUNK, file_sha256

REGISTRY_FILE = "REGISTRY.json"


class ArtifactChanged(Exception):
    """The folder no longer has the content it had when the version was registered."""


def is_local_artifact(uri: str) -> bool:
    return bool(uri) and not uri.startswith("builtin:")


def _files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.relative_to(folder).as_posix())


def artifact_digest(folder: Path | str) -> str:
    """sha256 of the sorted `relative/path<TAB>file-sha256` lines of every file in `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"artifact folder {str(folder)!r} does not exist")
    digest = hashlib.sha256()
    for path in _files(folder):
        digest.update(f"{path.relative_to(folder).as_posix()}\t{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def verify_artifact(folder: Path | str, expected: str) -> None:
    """Raise `ArtifactChanged` unless the folder still hashes to `expected` (no-op when empty)."""
    if not expected:
        return
    try:
        actual = artifact_digest(folder)
    except FileNotFoundError as error:
        raise ArtifactChanged(str(error)) from None
    if actual != expected:
        raise ArtifactChanged(f"artifact {folder} changed since registration (sha256 {actual[:12]}…, registered {expected[:12]}…)")


def read_manifest(folder: Path | str) -> dict | None:
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _header(name: str, size: int, mode: int = 0o644) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = int(time.time())
    return info.tobuf(format=tarfile.PAX_FORMAT)


def stream_tar(folder: Path, prefix: str, extra_files: dict[str, bytes]) -> Iterator[bytes]:
    """A tar archive of `folder` under `prefix/`, plus `extra_files`, produced in 1 MiB chunks.

    Written block by block (header, data, zero padding to 512 bytes, two zero blocks at the
    end) so a multi-gigabyte model never sits in memory.
    """
    for name, data in extra_files.items():
        yield _header(f"{prefix}/{name}", len(data))
        yield data
        if len(data) % 512:
            yield b"\0" * (512 - len(data) % 512)
    for path in _files(folder):
        relative = path.relative_to(folder).as_posix()
        if relative in extra_files:
            continue
        size = path.stat().st_size
        yield _header(f"{prefix}/{relative}", size)
        sent = 0
        with open(path, "rb") as handle:
            while sent < size and (chunk := handle.read(min(CHUNK, size - sent))):
                sent += len(chunk)
                yield chunk
        if sent != size:
            raise ArtifactChanged(f"{path} changed size while it was being sent")
        if size % 512:
            yield b"\0" * (512 - size % 512)
    yield b"\0" * 1024


def tar_bytes(chunks: Iterator[bytes]) -> io.BytesIO:
    """Collect a streamed archive (tests)."""
    return io.BytesIO(b"".join(chunks))
