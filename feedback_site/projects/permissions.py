"""Who may do what in a project. Deny by default: a user with no membership has no role.

Site superusers act as admins of every project; a user with `is_staff` may create projects.
Every app above `projects` checks access through these (pages through `projects.views.project_page`,
the API through `project_for`).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser

from feedback_site.core.errors import Forbidden, NotFound
from feedback_site.projects.models import Membership, Project, Role

STAFF_ROLES = frozenset({Role.ADMIN, Role.ML_STAFF})
ALL_ROLES = frozenset({Role.ADMIN, Role.ML_STAFF, Role.ANNOTATOR})


def project_role(user: AbstractBaseUser, project: Project | int) -> str | None:
    if not user or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    project_id = project if isinstance(project, int) else project.pk
    return Membership.objects.filter(project_id=project_id, user_id=user.pk).values_list("role", flat=True).first()


def require_role(user: AbstractBaseUser, project: Project | int, roles: Iterable[str]) -> str:
    """Returns the user's role or raises. Non-members get 404 so project ids are not probeable."""
    role = project_role(user, project)
    if role is None:
        raise NotFound("No such project.")
    if role not in set(roles):
        raise Forbidden("Your role in this project does not allow this.")
    return role


def visible_projects(user: AbstractBaseUser):
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def can_create_projects(user: AbstractBaseUser) -> bool:
    return bool(user.is_authenticated and (user.is_superuser or user.is_staff))


def project_for(user: AbstractBaseUser, project_id: int, roles: Iterable[str]) -> Project:
    """The project for an API view, after checking the user's role (404 for non-members)."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        raise NotFound("No such project.")
    require_role(user, project, roles)
    return project
