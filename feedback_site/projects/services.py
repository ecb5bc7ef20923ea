"""Every write to projects, memberships and guidelines.

Imports (the `ImportBatch` rows and the prompts and pairs they create) are written by
`feedback_site.annotation.imports`, the app that owns those rows; a project's base policy
(version 0) by `feedback_site.registry.services.project_create`, which creates the project with
`project_create` here and registers it.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max

from feedback_site.core.audit import audit_record
from feedback_site.core.errors import Forbidden, Invalid, NotFound
from feedback_site.projects.models import GuidelineVersion, Membership, Project, Role
from feedback_site.projects.permissions import can_create_projects, require_role

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
) -> Project:
    """The project, its creator as its admin and its first guidelines, without a policy: callers
    that want a project to work in use `registry.services.project_create`, which also registers
    version 0 of the policy (in the same transaction)."""
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
