"""Freezing judgments into immutable, content-hashed preference datasets.

Aggregation rules (selectable per snapshot, recorded in the snapshot row, its manifest and its
content hash):
  majority       every used judgment is one vote for a, b, tie or both_bad. The label with
                 strictly more votes than any other wins.
  gold_weighted  the same vote, each judgment weighted by its annotator's gold accuracy,
                 Laplace-smoothed: (correct + 1) / (judged + 2); no gold judged = 0.5. The label
                 with strictly the largest total weight wins.
  dawid_skene    Dawid & Skene (1979) EM over all used judgments of the project: per-annotator
                 confusion matrices and per-pair posteriors; the most probable label wins (level
                 = no winner).
If a or b wins, the pair becomes one preference row (chosen = winner). If tie or both_bad wins,
or the top labels are level, the pair is left out of the preference file (counted as dropped) but
all its judgments stay in the raw file. A pre-labelled pair (from an import) with no judgments
uses its import label when `include_prelabelled` is set.

An adjudicated label (feedback_site.quality.Adjudication) always wins over every rule.

Options (each recorded): exclude_too_fast (judgments under the project's minimum seconds),
exclude_position_biased (every judgment of an annotator whose left rate fails the binomial test at
`bias_alpha`), exclude_paused (annotators paused now), include_simulated (default False:
simulated annotators' judgments are not used). Excluded judgments stay in judgments.jsonl with
their reasons in `excluded`, but do not vote.

Files, written once under ARTIFACTS/snapshots/project-<id>/<content hash>/:
  preferences.jsonl / preferences.parquet  TRL conversational preference format
                                           ({"prompt": [messages], "chosen": [...], "rejected": [...]})
  pairs.jsonl                              every included pair with its texts and outcome
  judgments.jsonl                          raw judgments, annotators pseudonymised per project
  manifest.json                            counts, rule, hashes
Building: `snapshot_start` (pages, API) records a pending row and queues `snapshots.build`
(workers/snapshot_tasks.py, default queue), answering at once; `snapshot_build` is the job: it
streams pairs and judgments with server-side cursors (pairs in id order merged with judgments
ordered by pair, so no per-pair query and no full list in memory), aggregates each pair as it
goes, writes the JSONL files (hashed while written) and Parquet row groups into a `.building-*`
folder, writes progress through a second connection, and renames the folder into place at the
end; any error marks the row failed with the message and removes the folder. `snapshot_create`
does the same build in the calling process (tests, the closed loop). Memory: bounded by the
chunk sizes, except that Dawid–Skene's EM holds (pair, annotator, label) triples of all used
judgments (about 100 bytes each) and the plan holds adjudications and per-annotator maps.

The content hash is sha256 over the three data files (preferences.jsonl, pairs.jsonl,
judgments.jsonl, in that order) followed by the canonical JSON of the rule and its options, so
the same judgments under the same rule always give the same hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Max, Q
from django.utils import timezone

from feedback_site.annotation.models import Judgment, Pair, Preference, Split
from feedback_site.annotation.selectors import judgment_fields
from feedback_site.core.errors import Conflict, Invalid, ServiceError
from feedback_site.core.hashing import file_sha256
from feedback_site.projects.models import Project
from feedback_site.projects.permissions import STAFF_ROLES, require_role
from feedback_site.snapshots.conversation_files import CONVERSATION_FILES, write_conversations
from feedback_site.snapshots.models import Snapshot, SnapshotStatus
from feedback_site.snapshots.ranking_files import RANKING_FILES, RankingCounts, ranking_tasks_to_write, write_rankings
from workers.task_names import SNAPSHOT_BUILD

log = logging.getLogger(__name__)

AGGREGATION_RULES = ("majority", "gold_weighted", "dawid_skene")
DEFAULT_OPTIONS = {
    "exclude_too_fast": False,
    "exclude_position_biased": False,
    "exclude_paused": False,
    "include_simulated": False,
    "bias_alpha": 0.05,
}
# The ranking files come last and are empty in a project without rankings, so they leave the
# content hash of such a project's snapshots what it was before rankings existed.
DATA_FILES = ("preferences.jsonl", "pairs.jsonl", "judgments.jsonl", *RANKING_FILES, *CONVERSATION_FILES)
_PARQUET_BATCH = 2000
EMPTY_MESSAGE = "there are no judged or pre-labelled pairs, rankings or conversation turns to snapshot yet"


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
    excluded: int = 0
    adjudicated: int = 0
    rankings: RankingCounts | None = None
    conversation_pairs: int = 0


@dataclass
class _Plan:
    """What decides outcomes, computed once before streaming (a fixed number of queries)."""

    aggregation: str
    options: dict
    excluded_users: dict[int, list[str]]
    too_fast_ms: int | None
    adjudicated: dict[int, str]
    weights: dict[int, float]
    estimates: dict[int, str | None]

    def excluded(self, judgment) -> list[str]:
        reasons = list(self.excluded_users.get(judgment.annotator_id, ()))
        if self.too_fast_ms is not None and judgment.time_spent_ms is not None and judgment.time_spent_ms < self.too_fast_ms:
            reasons.append("too_fast")
        return reasons

    def outcome(self, pair_id: int, used: list) -> str | None:
        if self.aggregation == "gold_weighted":
            from feedback_site.quality.stats import gold_weight, weighted_vote

            return weighted_vote([(j.preferred, self.weights.get(j.annotator_id, gold_weight(0, 0))) for j in used])
        if self.aggregation == "dawid_skene":
            return self.estimates.get(pair_id) if used else None
        return majority([j.preferred for j in used])


def normalise_options(options: dict | None) -> dict:
    out = dict(DEFAULT_OPTIONS)
    for key, value in (options or {}).items():
        if key not in DEFAULT_OPTIONS:
            raise Invalid(f"unknown snapshot option {key!r}; known: {', '.join(DEFAULT_OPTIONS)}", code="bad_option")
        if key == "bias_alpha":
            try:
                value = float(value)
            except (TypeError, ValueError):
                value = -1.0
            if not 0 < value < 1:
                raise Invalid("bias_alpha must be a number between 0 and 1", code="bad_option")
        elif not isinstance(value, bool):
            raise Invalid(f"{key} must be true or false", code="bad_option")
        out[key] = value
    return out


def _plan(project: Project, aggregation: str, options: dict) -> _Plan:
    from django.db.models import Count

    from feedback_site.annotation.gold import gold_accuracy_by_annotator
    from feedback_site.projects.models import Membership
    from feedback_site.quality.models import Adjudication
    from feedback_site.quality.stats import dawid_skene, gold_weight, map_label, position_bias

    excluded: dict[int, list[str]] = {}
    members = Membership.objects.filter(project=project).values_list("user_id", "is_simulated", "paused_at")
    for user_id, is_simulated, paused_at in members:
        if is_simulated and not options["include_simulated"]:
            excluded.setdefault(user_id, []).append("simulated")
        if paused_at is not None and options["exclude_paused"]:
            excluded.setdefault(user_id, []).append("paused")
    if options["exclude_position_biased"]:
        sides = (
            Judgment.objects.filter(pair__project=project)
            .values("annotator_id")
            .annotate(left=Count("id", filter=Q(choice="left")), right=Count("id", filter=Q(choice="right")))
            .order_by()
        )
        for row in sides:
            if position_bias(row["left"], row["right"], alpha=options["bias_alpha"]).flagged:
                excluded.setdefault(row["annotator_id"], []).append("position_biased")
    too_fast_ms = None
    if options["exclude_too_fast"] and project.min_seconds_per_judgment:
        too_fast_ms = round(project.min_seconds_per_judgment * 1000)
    adjudicated = dict(Adjudication.objects.filter(pair__project=project).values_list("pair_id", "label"))
    weights: dict[int, float] = {}
    if aggregation == "gold_weighted":
        weights = {uid: gold_weight(c, n) for uid, (c, n) in gold_accuracy_by_annotator(project).items()}
    estimates: dict[int, str | None] = {}
    if aggregation == "dawid_skene":
        rows = Judgment.objects.filter(pair__project=project).exclude(annotator_id__in=list(excluded))
        if too_fast_ms is not None:
            rows = rows.exclude(time_spent_ms__lt=too_fast_ms)
        triples = list(rows.order_by("pair_id", "id").values_list("pair_id", "annotator_id", "preferred"))
        posterior, _ = dawid_skene(triples)
        estimates = {pair_id: map_label(p) for pair_id, p in posterior.items()}
    return _Plan(aggregation, options, excluded, too_fast_ms, adjudicated, weights, estimates)


def _iter_pair_judgments(project: Project, include_prelabelled: bool):
    """Yields (pair, [judgments]) in pair id order with two streaming queries merged, so memory
    stays flat however many judgments the project has."""
    pairs = (
        # Held-out evaluation prompts (split="eval") never reach training data.
        _pairs_to_write(project, include_prelabelled)
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


class _HashingWriter:
    """A UTF-8 text sink that hashes the bytes as it writes them (one pass, bounded memory)."""

    def __init__(self, path: Path):
        self.handle = path.open("wb", buffering=1 << 20)
        self.digest = hashlib.sha256()

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        self.digest.update(data)
        self.handle.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()


def _write_files(project: Project, folder: Path, plan: _Plan, include_prelabelled: bool, progress=None) -> tuple[_Counts, dict]:
    """Streams pairs and judgments into the data files; returns the counts and each JSONL
    file's sha256 (computed while writing). `progress(done)` is called as pairs are written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    schema = pa.schema([("prompt", pa.list_(message)), ("chosen", pa.list_(message)), ("rejected", pa.list_(message))])
    counts = _Counts()
    buffer: list[dict] = []
    with (
        _HashingWriter(folder / "preferences.jsonl") as prefs,
        _HashingWriter(folder / "pairs.jsonl") as pairs_out,
        _HashingWriter(folder / "judgments.jsonl") as raw,
        _HashingWriter(folder / "rankings.jsonl") as rankings_out,
        _HashingWriter(folder / "ranking_pairs.jsonl") as ranking_pairs_out,
        _HashingWriter(folder / "conversation_pairs.jsonl") as conversation_pairs_out,
        pq.ParquetWriter(folder / "preferences.parquet", schema) as parquet,
    ):

        def emit_preference(row: dict) -> None:
            prefs.write(json.dumps(row, ensure_ascii=False) + "\n")
            counts.preferences += 1
            buffer.append(row)
            if len(buffer) >= _PARQUET_BATCH:
                parquet.write_table(pa.Table.from_pylist(buffer, schema=schema))
                buffer.clear()

        for pair, judgments in _iter_pair_judgments(project, include_prelabelled):
            counts.pairs += 1
            if progress is not None:
                progress(counts.pairs)
            counts.judgments += len(judgments)
            reasons = {j.pk: plan.excluded(j) for j in judgments}
            used = [j for j in judgments if not reasons[j.pk]]
            counts.excluded += len(judgments) - len(used)
            if pair.pk in plan.adjudicated:
                outcome, basis = plan.adjudicated[pair.pk], "adjudication"
                counts.adjudicated += 1
            elif judgments:
                outcome, basis = plan.outcome(pair.pk, used), "judgments"
            else:
                outcome, basis = pair.prelabel, "import_label"
            prompt = _messages(pair.prompt)
            for j in judgments:
                raw.write(json.dumps({**judgment_fields(project.pk, j), "excluded": reasons[j.pk]}, ensure_ascii=False) + "\n")
            pairs_out.write(
                json.dumps(
                    {
                        "pair_id": pair.pk,
                        "prompt": prompt,
                        "response_a": pair.response_a.text,
                        "response_b": pair.response_b.text,
                        "source": pair.source,
                        "num_judgments": len(judgments),
                        "num_used_judgments": len(used),
                        "outcome": outcome,
                        "outcome_basis": basis,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
            if outcome not in (Preference.A, Preference.B):
                counts.dropped += 1
                continue
            chosen, rejected = (pair.response_a, pair.response_b) if outcome == Preference.A else (pair.response_b, pair.response_a)
            emit_preference(
                {
                    "prompt": prompt,
                    "chosen": [{"role": "assistant", "content": chosen.text}],
                    "rejected": [{"role": "assistant", "content": rejected.text}],
                }
            )
        counts.rankings = write_rankings(project, include_prelabelled, plan.excluded, rankings_out, ranking_pairs_out, emit_preference)
        counts.conversation_pairs = write_conversations(project, include_prelabelled, conversation_pairs_out, emit_preference)
        if buffer:
            parquet.write_table(pa.Table.from_pylist(buffer, schema=schema))
    hashes = {
        "preferences.jsonl": prefs.digest.hexdigest(),
        "pairs.jsonl": pairs_out.digest.hexdigest(),
        "judgments.jsonl": raw.digest.hexdigest(),
        "rankings.jsonl": rankings_out.digest.hexdigest(),
        "ranking_pairs.jsonl": ranking_pairs_out.digest.hexdigest(),
        "conversation_pairs.jsonl": conversation_pairs_out.digest.hexdigest(),
    }
    return counts, hashes


def _rule_record(aggregation: str, options: dict) -> bytes:
    return json.dumps({"aggregation": aggregation, "options": options}, sort_keys=True).encode()


def _content_hash(folder: Path, aggregation: str, options: dict) -> str:
    digest = hashlib.sha256()
    for name in DATA_FILES:
        with (folder / name).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    digest.update(_rule_record(aggregation, options))
    return digest.hexdigest()


def _validate(project: Project, actor, aggregation: str, note: str, options: dict | None) -> dict:
    require_role(actor, project, STAFF_ROLES)
    if aggregation not in AGGREGATION_RULES:
        raise Invalid(f"aggregation must be one of {', '.join(AGGREGATION_RULES)}", code="bad_aggregation")
    if len(note) > 500:
        raise Invalid("note must be at most 500 characters", code="bad_note")
    return normalise_options(options)


def _has_data(project: Project, include_prelabelled: bool) -> bool:
    from feedback_site.conversations.models import BranchPoint

    judged_turns = BranchPoint.objects.filter(task__project=project, judged_at__isnull=False)
    if not include_prelabelled:
        judged_turns = judged_turns.exclude(annotator__isnull=True)
    return (
        _pairs_to_write(project, include_prelabelled).exists()
        or ranking_tasks_to_write(project, include_prelabelled).exists()
        or judged_turns.exists()
    )


def _pairs_to_write(project: Project, include_prelabelled: bool):
    condition = Q(judgment_count__gt=0) | Q(adjudication__isnull=False)
    if include_prelabelled:
        condition |= ~Q(prelabel="")
    return Pair.objects.filter(project=project, prompt__split=Split.TRAIN).filter(condition)


@dataclass
class _Built:
    content_hash: str
    counts: _Counts
    files: dict
    folder: Path


def _build(project: Project, aggregation: str, options: dict, include_prelabelled: bool, progress=None) -> _Built:
    """Writes the files into a temporary folder next to the final one and renames it into place
    at the end; on any failure the temporary folder is removed, so a content-hash folder is
    either complete or absent."""
    root = Path(settings.ARTIFACTS_DIR) / "snapshots" / f"project-{project.pk}"
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    try:
        # One consistent view of pairs and judgments while annotators keep submitting. Only
        # possible when this call opens the transaction (inside an outer one the level is fixed).
        # SQLite has no such view (and an IMMEDIATE transaction would hold its write lock for the
        # whole export), so there the reads run in autocommit mode.
        consistent_view = connection.vendor == "postgresql" and not connection.in_atomic_block
        with transaction.atomic() if connection.vendor == "postgresql" else contextlib.nullcontext():
            if consistent_view:
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            plan = _plan(project, aggregation, options)
            counts, files = _write_files(project, work, plan, include_prelabelled, progress)
        if counts.pairs == 0 and counts.rankings.tasks == 0 and counts.conversation_pairs == 0:
            raise Invalid(EMPTY_MESSAGE, code="empty")
        content_hash = _content_hash(work, aggregation, options)
        files["preferences.parquet"] = file_sha256(work / "preferences.parquet")
        files = {name: files[name] for name in (*DATA_FILES, "preferences.parquet")}
        final = root / content_hash
        manifest = {
            "project_id": project.pk,
            "content_hash": content_hash,
            "aggregation": aggregation,
            "options": options,
            "include_prelabelled": include_prelabelled,
            "excluded_judgments": counts.excluded,
            "adjudicated_pairs": counts.adjudicated,
            "pairs": counts.pairs,
            "preferences": counts.preferences,
            "judgments": counts.judgments,
            "dropped": counts.dropped,
            "ranking_tasks": counts.rankings.tasks,
            "rankings": counts.rankings.rankings,
            "excluded_rankings": counts.rankings.excluded,
            "ranking_pairs": counts.rankings.pairs,
            "conversation_pairs": counts.conversation_pairs,
            "files": files,
            "format": "trl-conversational-preference",
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if final.exists():
            shutil.rmtree(work)
        else:
            try:
                os.replace(work, final)
            except OSError:
                # Another build of the same content (a redelivered job) renamed its folder first:
                # the content is identical by hash, so keep that one.
                if not (final / "manifest.json").exists():
                    raise
                shutil.rmtree(work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return _Built(content_hash, counts, files, final)


def _check_storage(project: Project) -> None:
    """Fail fast, before anything is recorded or queued, when the snapshot folder cannot be
    written (read-only, full): the OSError becomes the usual storage 503 (StorageErrorMiddleware
    and the API's handler) instead of a job that can only fail later."""
    root = Path(settings.ARTIFACTS_DIR) / "snapshots" / f"project-{project.pk}"
    root.mkdir(parents=True, exist_ok=True)
    probe = Path(tempfile.mkdtemp(prefix=".probe-", dir=root))
    try:
        with (probe / "probe").open("wb") as handle:
            handle.write(b"\0" * (256 << 10))  # room for at least a small snapshot
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _result_fields(built: _Built) -> dict:
    return {
        "content_hash": built.content_hash,
        "excluded_judgment_count": built.counts.excluded,
        "adjudicated_count": built.counts.adjudicated,
        "artifact_dir": str(built.folder),
        "pair_count": built.counts.pairs,
        "preference_count": built.counts.preferences,
        "judgment_count": built.counts.judgments,
        "dropped_count": built.counts.dropped,
        "ranking_task_count": built.counts.rankings.tasks,
        "ranking_count": built.counts.rankings.rankings,
        "ranking_pair_count": built.counts.rankings.pairs,
        "conversation_pair_count": built.counts.conversation_pairs,
        "files": built.files,
    }


def _next_number(project: Project) -> int:
    """Call inside a transaction: locks the project row so two snapshots never share a number."""
    Project.objects.select_for_update().filter(pk=project.pk).first()
    return (Snapshot.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1


def snapshot_create(
    *,
    project: Project,
    actor,
    aggregation: str = "majority",
    include_prelabelled: bool = True,
    note: str = "",
    options: dict | None = None,
) -> tuple[Snapshot, bool]:
    """Freeze the project's current judgments now, in this process (tests, the closed loop,
    scripts). Returns (snapshot, created); an identical ready snapshot (same content hash) is
    returned instead of a duplicate. Pages and the API use `snapshot_start` instead."""
    options = _validate(project, actor, aggregation, note, options)
    built = _build(project, aggregation, options, include_prelabelled)

    with transaction.atomic():
        number = _next_number(project)
        existing = Snapshot.objects.filter(
            project=project,
            content_hash=built.content_hash,
            aggregation=aggregation,
            include_prelabelled=include_prelabelled,
            status=SnapshotStatus.READY,
        ).first()
        if existing is not None:
            return existing, False
        snapshot = Snapshot.objects.create(
            project=project,
            number=number,
            aggregation=aggregation,
            options=options,
            include_prelabelled=include_prelabelled,
            note=note,
            created_by=actor,
            status=SnapshotStatus.READY,
            progress_done=built.counts.pairs,
            progress_total=built.counts.pairs,
            finished_at=timezone.now(),
            **_result_fields(built),
        )
        return snapshot, True


def snapshot_start(
    *,
    project: Project,
    actor,
    aggregation: str = "majority",
    include_prelabelled: bool = True,
    note: str = "",
    options: dict | None = None,
) -> Snapshot:
    """Validate, record a pending snapshot and queue its build (`snapshots.build`, default
    queue). Answers at once whatever the project's size; the job reports progress on the row.
    If the queue is unavailable the row is removed again and QueueUnavailable (503) raised."""
    from feedback_site.core.queue import enqueue

    options = _validate(project, actor, aggregation, note, options)
    _check_storage(project)
    if not _has_data(project, include_prelabelled):
        raise Invalid(EMPTY_MESSAGE, code="empty")
    with transaction.atomic():
        snapshot = Snapshot.objects.create(
            project=project,
            number=_next_number(project),
            aggregation=aggregation,
            options=options,
            include_prelabelled=include_prelabelled,
            note=note,
            created_by=actor,
            status=SnapshotStatus.PENDING,
        )
    try:
        enqueue(SNAPSHOT_BUILD, snapshot.pk)
    except Exception:
        Snapshot.objects.filter(pk=snapshot.pk, status=SnapshotStatus.PENDING).delete()
        raise
    return snapshot


class _ProgressReporter:
    """Writes progress to the snapshot row at most every `interval` seconds. On PostgreSQL the
    export reads inside one REPEATABLE READ READ ONLY transaction, so progress goes through a
    second, autocommit connection that other requests see at once."""

    def __init__(self, snapshot_id: int, interval: float = 1.0):
        self.snapshot_id, self.interval, self.last = snapshot_id, interval, 0.0
        self.conn = connections.create_connection("default") if connection.vendor == "postgresql" else None

    def _write(self, done: int) -> None:
        table = connection.ops.quote_name(Snapshot._meta.db_table)
        conn = self.conn or connection
        with conn.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET progress_done = %s WHERE id = %s", [done, self.snapshot_id])

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._write(done)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def snapshot_build(snapshot_id: int, *, progress_interval: float = 1.0) -> Snapshot | None:
    """The body of the `snapshots.build` job. Idempotent: a ready or failed snapshot is left as
    it is; a pending or running one (e.g. redelivered after a worker died) is built from the
    start. Any error marks the snapshot failed with a message; no files are left behind and the
    content hash stays empty."""
    snapshot = Snapshot.objects.filter(pk=snapshot_id).select_related("project").first()
    if snapshot is None:
        log.warning("snapshot %s is gone; nothing to build", snapshot_id)
        return None
    if snapshot.status in (SnapshotStatus.READY, SnapshotStatus.FAILED):
        return snapshot
    project = snapshot.project
    total = _pairs_to_write(project, snapshot.include_prelabelled).count()
    Snapshot.objects.filter(pk=snapshot.pk).update(status=SnapshotStatus.RUNNING, progress_done=0, progress_total=total, error="")
    reporter = _ProgressReporter(snapshot.pk, progress_interval)
    try:
        built = _build(project, snapshot.aggregation, snapshot.options, snapshot.include_prelabelled, reporter)
    except Exception as error:  # noqa: BLE001 - every failure is recorded on the row
        message = error.message if isinstance(error, ServiceError) else f"{error.__class__.__name__}: {error}"
        log.warning("snapshot %s failed: %s", snapshot.pk, message, exc_info=not isinstance(error, ServiceError))
        Snapshot.objects.filter(pk=snapshot.pk).update(status=SnapshotStatus.FAILED, error=message[:2000], finished_at=timezone.now())
        snapshot.refresh_from_db()
        return snapshot
    finally:
        reporter.close()
    with transaction.atomic():
        same = (
            Snapshot.objects.filter(
                project=project,
                content_hash=built.content_hash,
                aggregation=snapshot.aggregation,
                include_prelabelled=snapshot.include_prelabelled,
                status=SnapshotStatus.READY,
            )
            .exclude(pk=snapshot.pk)
            .order_by("number")
            .first()
        )
        note = snapshot.note
        if same is not None and not note:
            note = f"same content as snapshot {same.number}"
        Snapshot.objects.filter(pk=snapshot.pk).update(
            status=SnapshotStatus.READY,
            progress_done=built.counts.pairs,
            progress_total=built.counts.pairs,
            finished_at=timezone.now(),
            note=note,
            **_result_fields(built),
        )
    snapshot.refresh_from_db()
    return snapshot


DOWNLOADS = {
    "jsonl": ("preferences.jsonl", "application/x-ndjson"),
    "parquet": ("preferences.parquet", "application/vnd.apache.parquet"),
    "pairs": ("pairs.jsonl", "application/x-ndjson"),
    "judgments": ("judgments.jsonl", "application/x-ndjson"),
    "rankings": ("rankings.jsonl", "application/x-ndjson"),
    "ranking_pairs": ("ranking_pairs.jsonl", "application/x-ndjson"),
    "conversation_pairs": ("conversation_pairs.jsonl", "application/x-ndjson"),
}


def snapshot_file(snapshot: Snapshot, kind: str) -> tuple[Path, str]:
    """The path of one of the snapshot's files after checking it still has its recorded hash."""
    if snapshot.status != SnapshotStatus.READY:
        raise Conflict(f"snapshot {snapshot.number} is {snapshot.status}; its files exist once it is ready", code="snapshot_not_ready")
    if kind not in DOWNLOADS:
        raise Invalid(f"file must be one of {', '.join(DOWNLOADS)}", code="bad_format")
    name, content_type = DOWNLOADS[kind]
    path = Path(snapshot.artifact_dir) / name
    if not path.exists() or file_sha256(path) != snapshot.files.get(name):
        raise Conflict(
            f"snapshot {snapshot.number}'s file {name} is missing or does not match its recorded hash; "
            "restore the artifact folder from backup",
            code="corrupt_snapshot",
        )
    return path, content_type
