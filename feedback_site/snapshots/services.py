"""Freezing judgments into immutable, content-hashed preference datasets.

Aggregation rule "majority" (used when a pair has several judgments):
  every judgment is one vote for a, b, tie or both_bad. The label with strictly more votes than
  any other wins. If a or b wins, the pair becomes one preference row (chosen = winner). If tie
  or both_bad wins, or the top labels are level, the pair is left out of the preference file
  (counted as dropped) but all its judgments stay in the raw file. A pre-labelled pair (from an
  import) with no judgments uses its import label when `include_prelabelled` is set.

Files, written once under ARTIFACTS/snapshots/project-<id>/<content hash>/:
  preferences.jsonl / preferences.parquet  TRL conversational preference format
                                           ({"prompt": [messages], "chosen": [...], "rejected": [...]})
  pairs.jsonl                              every included pair with its texts and outcome
  judgments.jsonl                          raw judgments, annotators pseudonymised per project
  manifest.json                            counts, rule, hashes
The content hash is sha256 over the three data files (preferences.jsonl, pairs.jsonl,
judgments.jsonl, in that order), so the same judgments always give the same hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Q

from feedback_site.annotation.models import Judgment, Pair, Preference
from feedback_site.core.errors import Conflict, Invalid
from feedback_site.core.permissions import STAFF_ROLES, require_role
from feedback_site.projects.models import Project
from feedback_site.snapshots.models import Snapshot

AGGREGATION_RULES = ("majority",)
DATA_FILES = ("preferences.jsonl", "pairs.jsonl", "judgments.jsonl")
_PARQUET_BATCH = 2000


def pseudonym(project_id: int, user_id: int) -> str:
    """Stable within a project, unlinkable across projects without the server's secret key."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"{project_id}:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"ann-{digest[:16]}"


def majority(votes: list[str]) -> str | None:
    """The label with strictly more votes than any other, else None."""
    if not votes:
        return None
    ranked = Counter(votes).most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


def _messages(prompt) -> list[dict]:
    return prompt.messages()


@dataclass
class _Counts:
    pairs: int = 0
    preferences: int = 0
    judgments: int = 0
    dropped: int = 0


def _iter_pair_judgments(project: Project, include_prelabelled: bool):
    """Yields (pair, [judgments]) in pair id order with two streaming queries merged, so memory
    stays flat however many judgments the project has."""
    condition = Q(judgment_count__gt=0)
    if include_prelabelled:
        condition |= ~Q(prelabel="")
    pairs = (
        Pair.objects.filter(project=project)
        .filter(condition)
        .select_related("prompt", "response_a", "response_b")
        .order_by("id")
        .iterator(chunk_size=2000)
    )
    judgments = (
        Judgment.objects.filter(pair__project=project)
        .select_related("guideline_version")
        .order_by("pair_id", "id")
        .iterator(chunk_size=5000)
    )
    pending = next(judgments, None)
    for pair in pairs:
        mine = []
        while pending is not None and pending.pair_id <= pair.pk:
            if pending.pair_id == pair.pk:
                mine.append(pending)
            pending = next(judgments, None)
        yield pair, mine


def _write_files(project: Project, folder: Path, aggregation: str, include_prelabelled: bool) -> _Counts:
    import pyarrow as pa
    import pyarrow.parquet as pq

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    schema = pa.schema([("prompt", pa.list_(message)), ("chosen", pa.list_(message)), ("rejected", pa.list_(message))])
    counts = _Counts()
    buffer: list[dict] = []
    with (
        (folder / "preferences.jsonl").open("w", encoding="utf-8") as prefs,
        (folder / "pairs.jsonl").open("w", encoding="utf-8") as pairs_out,
        (folder / "judgments.jsonl").open("w", encoding="utf-8") as raw,
        pq.ParquetWriter(folder / "preferences.parquet", schema) as parquet,
    ):
        for pair, judgments in _iter_pair_judgments(project, include_prelabelled):
            counts.pairs += 1
            counts.judgments += len(judgments)
            if judgments:
                outcome, basis = majority([j.preferred for j in judgments]), "judgments"
            else:
                outcome, basis = pair.prelabel, "import_label"
            prompt = _messages(pair.prompt)
            for j in judgments:
                raw.write(json.dumps({
                    "judgment_id": j.pk,
                    "pair_id": pair.pk,
                    "annotator": pseudonym(project.pk, j.annotator_id),
                    "choice": j.choice,
                    "preferred": j.preferred,
                    "order_shown": ["b", "a"] if j.swapped else ["a", "b"],
                    "strength": j.strength or None,
                    "criteria": j.criteria,
                    "rationale": j.rationale,
                    "time_spent_ms": j.time_spent_ms,
                    "guideline_version": j.guideline_version.number if j.guideline_version else None,
                    "accepted_after_expiry": j.accepted_after_expiry,
                    "created_at": j.created_at.isoformat(),
                }, ensure_ascii=False) + "\n")
            pairs_out.write(json.dumps({
                "pair_id": pair.pk,
                "prompt": prompt,
                "response_a": pair.response_a.text,
                "response_b": pair.response_b.text,
                "source": pair.source,
                "num_judgments": len(judgments),
                "outcome": outcome,
                "outcome_basis": basis,
            }, ensure_ascii=False) + "\n")
            if outcome not in (Preference.A, Preference.B):
                counts.dropped += 1
                continue
            chosen, rejected = (pair.response_a, pair.response_b) if outcome == Preference.A else (pair.response_b, pair.response_a)
            row = {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": chosen.text}],
                "rejected": [{"role": "assistant", "content": rejected.text}],
            }
            prefs.write(json.dumps(row, ensure_ascii=False) + "\n")
            counts.preferences += 1
            buffer.append(row)
            if len(buffer) >= _PARQUET_BATCH:
                parquet.write_table(pa.Table.from_pylist(buffer, schema=schema))
                buffer.clear()
        if buffer:
            parquet.write_table(pa.Table.from_pylist(buffer, schema=schema))
    return counts


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _content_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in DATA_FILES:
        with (folder / name).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def snapshot_create(
    *, project: Project, actor, aggregation: str = "majority", include_prelabelled: bool = True, note: str = ""
) -> tuple[Snapshot, bool]:
    """Freeze the project's current judgments. Returns (snapshot, created); an identical
    snapshot (same content hash) is returned instead of a duplicate."""
    require_role(actor, project, STAFF_ROLES)
    if aggregation not in AGGREGATION_RULES:
        raise Invalid(f"aggregation must be one of {', '.join(AGGREGATION_RULES)}", code="bad_aggregation")
    if len(note) > 500:
        raise Invalid("note must be at most 500 characters", code="bad_note")
    root = Path(settings.ARTIFACTS_DIR) / "snapshots" / f"project-{project.pk}"
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    try:
        # One consistent view of pairs and judgments while annotators keep submitting. Only
        # possible when this call opens the transaction (inside an outer one the level is fixed).
        consistent_view = connection.vendor == "postgresql" and not connection.in_atomic_block
        with transaction.atomic():
            if consistent_view:
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            counts = _write_files(project, work, aggregation, include_prelabelled)
        if counts.pairs == 0:
            raise Invalid("there are no judged or pre-labelled pairs to snapshot yet", code="empty")
        content_hash = _content_hash(work)
        files = {name: _sha256(work / name) for name in (*DATA_FILES, "preferences.parquet")}
        final = root / content_hash
        manifest = {
            "project_id": project.pk,
            "content_hash": content_hash,
            "aggregation": aggregation,
            "include_prelabelled": include_prelabelled,
            "pairs": counts.pairs,
            "preferences": counts.preferences,
            "judgments": counts.judgments,
            "dropped": counts.dropped,
            "files": files,
            "format": "trl-conversational-preference",
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if final.exists():
            shutil.rmtree(work)
        else:
            os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise

    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        existing = Snapshot.objects.filter(
            project=project, content_hash=content_hash, aggregation=aggregation, include_prelabelled=include_prelabelled
        ).first()
        if existing is not None:
            return existing, False
        number = (Snapshot.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
        snapshot = Snapshot.objects.create(
            project=project,
            number=number,
            content_hash=content_hash,
            aggregation=aggregation,
            include_prelabelled=include_prelabelled,
            artifact_dir=str(final),
            pair_count=counts.pairs,
            preference_count=counts.preferences,
            judgment_count=counts.judgments,
            dropped_count=counts.dropped,
            files=files,
            note=note,
            created_by=actor,
        )
        return snapshot, True


DOWNLOADS = {
    "jsonl": ("preferences.jsonl", "application/x-ndjson"),
    "parquet": ("preferences.parquet", "application/vnd.apache.parquet"),
    "pairs": ("pairs.jsonl", "application/x-ndjson"),
    "judgments": ("judgments.jsonl", "application/x-ndjson"),
}


def snapshot_file(snapshot: Snapshot, kind: str) -> tuple[Path, str]:
    """The path of one of the snapshot's files after checking it still has its recorded hash."""
    if kind not in DOWNLOADS:
        raise Invalid(f"file must be one of {', '.join(DOWNLOADS)}", code="bad_format")
    name, content_type = DOWNLOADS[kind]
    path = Path(snapshot.artifact_dir) / name
    if not path.exists() or _sha256(path) != snapshot.files.get(name):
        raise Conflict(
            f"snapshot {snapshot.number}'s file {name} is missing or does not match its recorded hash; "
            "restore the artifact folder from backup",
            code="corrupt_snapshot",
        )
    return path, content_type
