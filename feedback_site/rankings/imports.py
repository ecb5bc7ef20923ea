"""Ranking imports: a JSON Lines file of answer sets (with rankings, or to be ranked) becomes an
`ImportBatch` and its prompts, answers and ranking tasks, all or nothing (format:
`feedback_site.rankings.importers`).

An answer set that comes with rankings keeps them as pre-labels (snapshots expand them while the
task has no collected ranking) and is not queued unless `queue_for_annotation` is True; an
unranked set is queued unless it is False; a gold set is mixed into annotators' queues at the
project's gold rate with its order as the known answer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from feedback_site.annotation.importers import ImportFileError, ImportLimits
from feedback_site.annotation.imports import ImportResult
from feedback_site.annotation.models import Prompt, Response
from feedback_site.annotation.rendered import pairs_created
from feedback_site.core.errors import Invalid
from feedback_site.projects.models import ImportBatch, ImportKind, Project
from feedback_site.projects.permissions import STAFF_ROLES, require_role
from feedback_site.rankings.importers import parse_rankings
from feedback_site.rankings.models import RankingSource, RankingTask


@dataclass(frozen=True)
class RankingImport:
    batch: ImportBatch
    tasks: int
    queued: int
    gold: int
    prelabelled: int

    def as_import_result(self) -> ImportResult:
        made = f"{self.tasks:,} ranking task{'s' if self.tasks != 1 else ''} ({self.queued:,} queued, {self.gold:,} gold, {self.prelabelled:,} pre-ranked)"
        return ImportResult(batch=self.batch, prompts=self.tasks, pairs=0, made=made)


def import_for_imports_page(**kwargs) -> ImportResult:
    """`import_rankings` as the imports page and API call it (annotation.imports.register_kind)."""
    return import_rankings(**kwargs).as_import_result()


def import_rankings(*, project: Project, actor, filename: str, data: bytes, queue_for_annotation: bool | None = None) -> RankingImport:
    require_role(actor, project, STAFF_ROLES)
    if len(data) > settings.IMPORT_MAX_BYTES:
        raise Invalid(f"file is {len(data):,} bytes; the limit is {settings.IMPORT_MAX_BYTES:,} bytes", code="too_large")
    try:
        records = parse_rankings(data, filename, ImportLimits(max_bytes=settings.IMPORT_MAX_BYTES))
    except ImportFileError as error:
        raise Invalid(str(error), code="bad_file") from None

    with transaction.atomic():
        batch = ImportBatch.objects.create(
            project=project,
            kind=ImportKind.RANKINGS,
            filename=filename[:255],
            sha256=hashlib.sha256(data).hexdigest(),
            record_count=len(records),
            queued_for_annotation=False,
            created_by=actor,
        )
        prompts = Prompt.objects.bulk_create(
            [
                Prompt(
                    project=project,
                    import_batch=batch,
                    text=r.prompt.text,
                    system_prompt=r.prompt.system_prompt,
                    history=[m.to_dict() for m in r.prompt.history],
                    metadata=dict(r.prompt.metadata),
                )
                for r in records
            ],
            batch_size=2000,
        )
        responses = Response.objects.bulk_create(
            [
                Response(prompt=prompt, text=text, sample_index=index, metadata={"import_batch": batch.pk})
                for prompt, record in zip(prompts, records)
                for index, text in enumerate(record.answers)
            ],
            batch_size=4000,
        )
        tasks, start = [], 0
        for prompt, record in zip(prompts, records):
            ids = [r.pk for r in responses[start : start + len(record.answers)]]
            start += len(record.answers)
            rankings = [{"order": [[ids[i] for i in tier] for tier in order], "all_unacceptable": bad} for order, bad in record.rankings]
            queued = not record.gold and (queue_for_annotation if queue_for_annotation is not None else not rankings)
            tasks.append(
                RankingTask(
                    project=project,
                    prompt=prompt,
                    response_ids=ids,
                    answer_key=",".join(str(i) for i in sorted(ids)),
                    overlap=project.overlap if queued else 0,
                    is_complete=not queued,
                    is_gold=record.gold,
                    gold_order=rankings[0]["order"] if record.gold else None,
                    prelabels=[] if record.gold else rankings,
                    source=RankingSource.IMPORTED,
                    import_batch=batch,
                )
            )
        RankingTask.objects.bulk_create(tasks, batch_size=2000)
        pairs_created(project.pk)  # renders the new rows' HTML after commit
        queued_count = sum(t.overlap > 0 for t in tasks)
        batch.queued_for_annotation = queued_count > 0
        batch.save(update_fields=["queued_for_annotation"])
        return RankingImport(
            batch=batch,
            tasks=len(tasks),
            queued=queued_count,
            gold=sum(t.is_gold for t in tasks),
            prelabelled=sum(bool(t.prelabels) for t in tasks),
        )
