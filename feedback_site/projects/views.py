"""The project list (the home page) and the helpers every project page uses.

Project pages live in the app whose data they show: imports in `annotation`, the overview,
new project and members pages (which show or change several apps' data) in `overview`, and so on
up the layers (docs/architecture.md); they share the helpers here. Views are thin: check access,
validate a form, call one service, render. A service's error is shown on the page it came from
with the service's status code; access errors (not a member, wrong role) render an error page
with 404 or 403.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.db.models import Count, IntegerField, Sum
from django.db.models.functions import Least
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse

from feedback_site.core.errors import NotFound, ServiceError
from feedback_site.projects.models import Membership, Project, Role
from feedback_site.projects.permissions import STAFF_ROLES, can_create_projects, require_role, visible_projects

ADMIN_ONLY = frozenset({Role.ADMIN})


# ------------------------------------------------------------------------------------------------
# Shared by every project page
# ------------------------------------------------------------------------------------------------


def error_page(request, error: ServiceError, *, project: Project | None = None) -> HttpResponse:
    return render(
        request,
        "projects/error.html",
        {"error": error, "status": error.status_code, "project": project},
        status=error.status_code,
    )


def project_context(project: Project, role: str, **extra) -> dict:
    """What the project header and tabs need on every project page."""
    return {
        "project": project,
        "role": role,
        "role_label": Role(role).label,
        "is_admin": role == Role.ADMIN,
        "is_staff": role in STAFF_ROLES,
        **extra,
    }


def project_page(roles):
    """Decorator for pages under /projects/<id>/: login required, then the project is loaded and
    the user's role checked (non-members get 404 so project ids cannot be probed, members with
    the wrong role 403). The view receives (request, project, role, ...)."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, project_id: int, *args, **kwargs):
            project = Project.objects.select_related("current_policy").filter(pk=project_id).first()
            try:
                if project is None:
                    raise NotFound("No such project.")
                role = require_role(request.user, project, roles)
            except ServiceError as error:
                return error_page(request, error, project=None)
            return view(request, project, role, *args, **kwargs)

        return login_required(wrapper)

    return decorate


def form_status(form, default: int = 400) -> int:
    return getattr(form, "status_code", default)


def run_service(form, call):
    """Calls `call()`; a ServiceError is attached to the form (and its status remembered) and
    None returned, so the view re-renders the form with the service's message."""
    try:
        return call()
    except ServiceError as error:
        form.add_service_error(error)
        form.status_code = error.status_code
        return None


# ------------------------------------------------------------------------------------------------
# The project list (the site's home page)
# ------------------------------------------------------------------------------------------------


def _next_step(project, role: str, *, open_slots: int) -> dict:
    """What the home page suggests doing next in a project: a label and the page that does it."""
    staff = role in STAFF_ROLES
    if open_slots > 0:
        return {
            "label": f"Annotate ({open_slots:,} judgment{'s' if open_slots != 1 else ''} open)",
            "url": reverse("annotate", args=[project.pk]),
        }
    if not staff:
        return {"label": "Nothing to annotate now", "url": None}
    if project.prompt_count == 0:
        return {"label": "Import prompts", "url": reverse("project-imports", args=[project.pk])}
    if project.pair_count == 0:
        return {"label": "Generate answers to compare", "url": reverse("project-generate", args=[project.pk])}
    return {"label": "Snapshot and train", "url": reverse("project-training", args=[project.pk])}


@login_required
def home(request):
    # Progress through the reverse relations by name: projects sits below annotation in the layer
    # order, so it cannot import the Pair model (one grouped query for all projects).
    projects = list(
        visible_projects(request.user)
        .annotate(
            pair_count=Count("pairs", distinct=True),
            slots_needed=Sum("pairs__overlap"),
            slots_done=Sum(Least("pairs__judgment_count", "pairs__overlap", output_field=IntegerField())),
        )
        .order_by("name")
    )
    # A second query, not a second join: joining prompts too would multiply the sums above.
    prompt_counts = dict(Project.objects.filter(pk__in=[p.pk for p in projects]).annotate(n=Count("prompts")).values_list("pk", "n"))
    for p in projects:
        p.prompt_count = prompt_counts.get(p.pk, 0)
    roles = dict(Membership.objects.filter(user=request.user).values_list("project_id", "role"))
    labels = dict(Role.choices)
    rows = []
    for p in projects:
        role = roles.get(p.pk) or (Role.ADMIN if request.user.is_superuser else "")
        needed, done = p.slots_needed or 0, p.slots_done or 0
        rows.append(
            {
                "project": p,
                "role_label": labels.get(role, ""),
                "percent": round(100 * done / needed) if needed else None,
                "done": done,
                "needed": needed,
                "next": _next_step(p, role, open_slots=needed - done),
            }
        )
    return render(request, "projects/home.html", {"rows": rows, "can_create": can_create_projects(request.user)})
