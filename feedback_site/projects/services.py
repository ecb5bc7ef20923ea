"""Every write to projects, memberships, guidelines and imports."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max

from feedback_site.annotation.models import Pair, PairSource, Prompt, Response
from feedback_site.annotation.rendered import pairs_created
from feedback_site.core.audit import audit_record
from feedback_site.core.errors import Forbidden, Invalid, NotFound
from feedback_site.projects import importers
from feedback_site.projects.models import GuidelineVersion, ImportBatch, ImportKind, Membership, Project, Role
from feedback_site.projects.permissions import STAFF_ROLES, can_create_projects, require_role
from feedback_site.registry.services import base_policy_register

User = get_user_model()


def _validate_project_fields(*, name: str, overlap: int, lease_seconds: int, criteria: list) -> None:
    if not name or not name.strip() or len(name) > 200:
        raise Invalid("name must be 1 to 200 characters", code="bad_name")
    if not isinstance(overlap, int) or not 1 <= overlap <= 20:
        raise Invalid("overlap must be an integer from 1 to 20", code="bad_overlap")
    if not isinstance(lease_seconds, int) or not 30 <= lease_seconds <= 86400:
        raise Invalid("lease_seconds must be an integer from 30 to 86400", code="bad_lease")
    if not isinstance(criteria, list) or not all(isinstance(c, str) and 0 < len(c) <= 50 for c in criteria):
        raise Invalid("criteria must be a list of names of 1 to 50 characters", code="bad_criteria")
    if len(set(criteria)) != len(criteria) or len(criteria) > 10:
        raise Invalid("criteria must be at most 10 distinct names", code="bad_criteria")


@transaction.atomic
def project_create(
    *,
    creator,
    name: str,
    description: str = "",
    overlap: int = 1,
    lease_seconds: int | None = None,
    criteria: list[str] | None = None,
    guidelines: str = "",
    base_policy_uri: str | None = None,
) -> Project:
    if not can_create_projects(creator):
        raise Forbidden("Only site admins can create projects.")
    lease_seconds = settings.ASSIGNMENT_LEASE_SECONDS if lease_seconds is None else lease_seconds
    criteria = list(criteria or [])
    _validate_project_fields(name=name, overlap=overlap, lease_seconds=lease_seconds, criteria=criteria)
    project = Project.objects.create(
        name=name.strip(),
        description=description,
        overlap=overlap,
        lease_seconds=lease_seconds,
        criteria=criteria,
        created_by=creator,
    )
    membership = Membership.objects.create(project=project, user=creator, role=Role.ADMIN)
    audit_record(
        actor=creator,
        action="member.add",
        target=membership,
        project=project,
        details={"user_id": creator.pk, "username": creator.get_username(), "role": Role.ADMIN},
    )
    base_policy_register(project=project, artifact_uri=base_policy_uri, created_by=creator)
    if guidelines.strip():
        guideline_publish(project=project, author=creator, text=guidelines)
    return project


@transaction.atomic
def project_update(*, project: Project, actor, **fields) -> Project:
    require_role(actor, project, {Role.ADMIN})
    allowed = {"name", "description", "overlap", "lease_seconds", "criteria"}
    unknown = set(fields) - allowed
    if unknown:
        raise Invalid(f"cannot change {', '.join(sorted(unknown))}", code="bad_field")
    merged = {
        "name": project.name,
        "overlap": project.overlap,
        "lease_seconds": project.lease_seconds,
        "criteria": project.criteria,
        **{k: v for k, v in fields.items() if k != "description"},
    }
    _validate_project_fields(**merged)
    for key, value in fields.items():
        setattr(project, key, value.strip() if key == "name" else value)
    project.save(update_fields=list(fields))
    return project


@transaction.atomic
def membership_set(*, project: Project, actor, user, role: str) -> Membership:
    """Add a member or change their role (admins only)."""
    require_role(actor, project, {Role.ADMIN})
    if role not in Role.values:
        raise Invalid(f"role must be one of {', '.join(Role.values)}", code="bad_role")
    previous = Membership.objects.select_for_update().filter(project=project, user=user).first()
    if previous is not None and previous.role == role:
        return previous
    membership, created = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    audit_record(
        actor=actor,
        action="member.add" if created else "member.role_change",
        target=membership,
        project=project,
        details={
            "user_id": user.pk,
            "username": user.get_username(),
            "role": role,
            **({} if created else {"previous_role": previous.role}),
        },
    )
    return membership


@transaction.atomic
def membership_remove(*, project: Project, actor, user) -> None:
    require_role(actor, project, {Role.ADMIN})
    membership = Membership.objects.filter(project=project, user=user).first()
    if membership is None:
        raise NotFound("That user is not a member of this project.")
    if membership.role == Role.ADMIN and Membership.objects.filter(project=project, role=Role.ADMIN).count() == 1:
        raise Invalid("A project keeps at least one admin.", code="last_admin")
    # Their judgments stay: removal ends access, it never deletes work.
    audit_record(
        actor=actor,
        action="member.remove",
        target=membership,
        project=project,
        details={"user_id": user.pk, "username": user.get_username(), "role": membership.role},
    )
    membership.delete()


@transaction.atomic
def guideline_publish(*, project: Project, author, text: str) -> GuidelineVersion:
    require_role(author, project, {Role.ADMIN, Role.ML_STAFF})
    if not text.strip():
        raise Invalid("guideline text is empty", code="bad_guideline")
    Project.objects.select_for_update().filter(pk=project.pk).first()
    last = GuidelineVersion.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0
    return GuidelineVersion.objects.create(project=project, number=last + 1, text=text, created_by=author)


@dataclass(frozen=True)
class ImportResult:
    batch: ImportBatch
    prompts: int
    pairs: int


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
