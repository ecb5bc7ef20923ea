"""Imports: an uploaded file of prompts, ready-made pairs or HH-RLHF records becomes an
`ImportBatch` (a projects row, the project's import history) and the prompts, responses and pairs
it holds (this app's rows), all or nothing.

The files are parsed by `feedback_site.annotation.importers` (pure parsing, no Django).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from feedback_site.annotation import importers
from feedback_site.annotation.models import Pair, PairSource, Prompt, Response
from feedback_site.annotation.rendered import pairs_created
from feedback_site.core.errors import Invalid
from feedback_site.projects.models import ImportBatch, ImportKind, Project
from feedback_site.projects.permissions import STAFF_ROLES, require_role


@dataclass(frozen=True)
class ImportResult:
    batch: ImportBatch
    prompts: int
    pairs: int
    # What else the file made, in words ("12 ranking tasks"), for kinds imported by other apps.
    made: str = ""


# Import kinds whose rows live in apps above this one (rankings): the app registers its service
# here (in its AppConfig.ready), so the imports page and API take every kind without importing
# upwards. The service takes (project, actor, filename, data, queue_for_annotation) and returns an
# ImportResult.
OTHER_KINDS: dict[str, Callable[..., ImportResult]] = {}


def register_kind(kind: str, service: Callable[..., ImportResult]) -> None:
    OTHER_KINDS[kind] = service


_PARSERS = {
    ImportKind.PROMPTS: importers.parse_prompts,
    ImportKind.PAIRS: importers.parse_pairs,
    ImportKind.HH_RLHF: importers.parse_hh_rlhf,
}


def _prompt_row(project: Project, batch: ImportBatch, record) -> Prompt:
    return Prompt(
        project=project,
        import_batch=batch,
        text=record.text,
        system_prompt=record.system_prompt,
        history=[{"role": m.role, "content": m.content} for m in record.history],
        metadata=dict(record.metadata),
    )


def import_file(
    *,
    project: Project,
    actor,
    kind: str,
    filename: str,
    data: bytes,
    queue_for_annotation: bool | None = None,
) -> ImportResult:
    """Parse the whole file, then write it in one transaction: all of it or nothing.

    Pairs that came with a label (`preferred`, or every HH-RLHF pair) are kept as pre-labelled
    and are not queued for annotation unless `queue_for_annotation` is True; unlabelled pairs
    are queued unless it is False.
    """
    require_role(actor, project, STAFF_ROLES)
    if kind in OTHER_KINDS:
        return OTHER_KINDS[kind](project=project, actor=actor, filename=filename, data=data, queue_for_annotation=queue_for_annotation)
    if kind not in _PARSERS:
        raise Invalid(f"kind must be one of {', '.join(ImportKind.values)}", code="bad_kind")
    if len(data) > settings.IMPORT_MAX_BYTES:
        raise Invalid(f"file is {len(data):,} bytes; the limit is {settings.IMPORT_MAX_BYTES:,} bytes", code="too_large")
    limits = importers.ImportLimits(max_bytes=settings.IMPORT_MAX_BYTES)
    try:
        records = _PARSERS[kind](data, filename, limits)
    except importers.ImportFileError as error:
        raise Invalid(str(error), code="bad_file") from None

    with transaction.atomic():
        batch = ImportBatch.objects.create(
            project=project,
            kind=kind,
            filename=filename[:255],
            sha256=hashlib.sha256(data).hexdigest(),
            record_count=len(records),
            queued_for_annotation=bool(queue_for_annotation) if queue_for_annotation is not None else kind == ImportKind.PROMPTS,
            created_by=actor,
        )
        if kind == ImportKind.PROMPTS:
            Prompt.objects.bulk_create([_prompt_row(project, batch, r) for r in records], batch_size=2000)
            pairs_created(project.pk)  # renders the prompts' HTML after commit
            return ImportResult(batch=batch, prompts=len(records), pairs=0)

        prompts = Prompt.objects.bulk_create([_prompt_row(project, batch, r.prompt) for r in records], batch_size=2000)
        responses = Response.objects.bulk_create(
            [
                Response(prompt=prompt, text=text, sample_index=index, metadata={"import_batch": batch.pk})
                for prompt, record in zip(prompts, records)
                for index, text in enumerate((record.response_a, record.response_b))
            ],
            batch_size=4000,
        )
        pairs = []
        for i, (prompt, record) in enumerate(zip(prompts, records)):
            labelled = record.preferred is not None
            queued = queue_for_annotation if queue_for_annotation is not None else not labelled
            gold = getattr(record, "gold", False)
            if gold:
                # Gold pairs are served outside the normal queue (annotation.services).
                queued = False
            pairs.append(
                Pair(
                    project=project,
                    prompt=prompt,
                    response_a=responses[2 * i],
                    response_b=responses[2 * i + 1],
                    overlap=project.overlap if queued else 0,
                    is_complete=not queued,
                    prelabel="" if gold else (record.preferred or ""),
                    is_gold=gold,
                    gold_label=record.preferred if gold else "",
                    source=PairSource.IMPORTED,
                    import_batch=batch,
                )
            )
        Pair.objects.bulk_create(pairs, batch_size=4000)
        # After commit: render the new rows' HTML once and refresh the queue's planner statistics.
        pairs_created(project.pk)
        batch.queued_for_annotation = any(p.overlap > 0 for p in pairs)
        batch.save(update_fields=["queued_for_annotation"])
        return ImportResult(batch=batch, prompts=len(prompts), pairs=len(pairs))
