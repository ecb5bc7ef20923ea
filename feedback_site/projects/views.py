"""Project pages: create, overview (with settings and guidelines), members and imports.

Views are thin: check access, validate a form, call one service, render. A service's error is
shown on the page it came from with the service's status code; access errors (not a member,
wrong role) render an error page with 404 or 403. The helpers at the top are shared with the
generation and snapshot pages.
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from feedback_site.annotation.models import Prompt, Split
from feedback_site.annotation.selectors import annotator_progress, current_guideline, project_progress
from feedback_site.core.errors import Forbidden, NotFound, ServiceError
from feedback_site.generation.models import GenerationRun
from feedback_site.projects import services
from feedback_site.projects.forms import (
    QUEUE_DEFAULTS,
    GuidelineForm,
    ImportForm,
    MemberAddForm,
    MemberRoleForm,
    ProjectCreateForm,
    ProjectSettingsForm,
)
from feedback_site.projects.models import ImportBatch, ImportKind, Membership, Project, Role
from feedback_site.projects.permissions import ALL_ROLES, STAFF_ROLES, can_create_projects, require_role, visible_projects
from feedback_site.registry.models import ModelVersion
from feedback_site.snapshots.models import Snapshot

User = get_user_model()
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


@login_required
def home(request):
    projects = list(visible_projects(request.user).order_by("name"))
    roles = dict(Membership.objects.filter(user=request.user).values_list("project_id", "role"))
    labels = dict(Role.choices)
    rows = [
        {"project": p, "role_label": labels.get(roles.get(p.pk) or (Role.ADMIN if request.user.is_superuser else ""), "")} for p in projects
    ]
    return render(request, "projects/home.html", {"rows": rows, "can_create": can_create_projects(request.user)})


# ------------------------------------------------------------------------------------------------
# New project
# ------------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def project_create(request):
    if not can_create_projects(request.user):
        return error_page(request, Forbidden("Only site staff can create projects. Ask a site admin."))
    form = ProjectCreateForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            project = run_service(form, lambda: services.project_create(creator=request.user, **form.cleaned_data))
            if project is not None:
                messages.success(request, f"Project “{project.name}” created. You are its admin; policy version 0 is registered.")
                return redirect("project-detail", project.pk)
        status = form_status(form)
    return render(request, "projects/project_create.html", {"form": form}, status=status)


# ------------------------------------------------------------------------------------------------
# Overview, settings, guidelines
# ------------------------------------------------------------------------------------------------


def _detail_context(request, project: Project, role: str, *, settings_form=None, guideline_form=None) -> dict:
    context = project_context(project, role, guideline=current_guideline(project))
    context["member_count"] = Membership.objects.filter(project=project).count()
    context["my_progress"] = annotator_progress(project=project, annotator=request.user)
    if role in STAFF_ROLES:
        progress = project_progress(project)
        progress["percent"] = round(100 * progress["judgments"] / progress["needed"]) if progress["needed"] else 0
        context.update(
            progress=progress,
            prompt_count=Prompt.objects.filter(project=project, split=Split.TRAIN).count(),
            versions=list(ModelVersion.objects.filter(project=project).select_related("parent").order_by("kind", "-number")[:20]),
            runs=list(GenerationRun.objects.filter(project=project).select_related("policy").order_by("-id")[:5]),
            snapshots=list(Snapshot.objects.filter(project=project).order_by("-number")[:5]),
            guideline_form=guideline_form or GuidelineForm(prefix="guideline"),
        )
    if role == Role.ADMIN:
        context["settings_form"] = settings_form or ProjectSettingsForm.for_project(project)
    return context


@project_page(ALL_ROLES)
@require_http_methods(["GET"])
def project_detail(request, project, role):
    return render(request, "projects/project_detail.html", _detail_context(request, project, role))


@project_page(ADMIN_ONLY)
@require_POST
def project_settings(request, project, role):
    form = ProjectSettingsForm.for_project(project, request.POST)
    if form.is_valid():
        changed = form.changed_values()
        if not changed:
            messages.info(request, "Nothing changed.")
            return redirect("project-detail", project.pk)
        updated = run_service(form, lambda: services.project_update(project=project, actor=request.user, **changed))
        if updated is not None:
            messages.success(request, "Settings saved. New pairs use the new overlap; leases use the new length from their next renewal.")
            return redirect("project-detail", project.pk)
        project.refresh_from_db()
    context = _detail_context(request, project, role, settings_form=form)
    return render(request, "projects/project_detail.html", context, status=form_status(form))


@project_page(STAFF_ROLES)
@require_POST
def guideline_publish(request, project, role):
    form = GuidelineForm(request.POST, prefix="guideline")
    if form.is_valid():
        version = run_service(
            form, lambda: services.guideline_publish(project=project, author=request.user, text=form.cleaned_data["text"])
        )
        if version is not None:
            messages.success(request, f"Guideline version {version.number} published. New judgments record it.")
            return redirect("project-detail", project.pk)
    context = _detail_context(request, project, role, guideline_form=form)
    return render(request, "projects/project_detail.html", context, status=form_status(form))


# ------------------------------------------------------------------------------------------------
# Members
# ------------------------------------------------------------------------------------------------


def _members_page(request, project, role, *, add_form=None, error: ServiceError | None = None, status: int = 200):
    members = (
        Membership.objects.filter(project=project)
        .select_related("user")
        .annotate(judged=Count("user__judgments", filter=Q(user__judgments__pair__project=project)))
        .order_by("user__username")
    )
    context = project_context(
        project,
        role,
        members=members,
        role_choices=Role.choices,
        add_form=add_form or MemberAddForm(),
        error=error,
        admin_count=sum(1 for m in members if m.role == Role.ADMIN),
    )
    return render(request, "projects/members.html", context, status=status)


@project_page(STAFF_ROLES)
@require_http_methods(["GET"])
def project_members(request, project, role):
    return _members_page(request, project, role)


@project_page(ADMIN_ONLY)
@require_POST
def member_add(request, project, role):
    form = MemberAddForm(request.POST)
    if form.is_valid():
        user = form.cleaned_data["user"]
        membership = run_service(
            form, lambda: services.membership_set(project=project, actor=request.user, user=user, role=form.cleaned_data["role"])
        )
        if membership is not None:
            messages.success(request, f"{user.username} is now {membership.get_role_display()} in this project.")
            return redirect("project-members", project.pk)
    return _members_page(request, project, role, add_form=form, status=form_status(form))


def _member_user(project, user_id: int):
    user = User.objects.filter(pk=user_id, memberships__project=project).first()
    if user is None:
        raise NotFound("That user is not a member of this project.")
    return user


@project_page(ADMIN_ONLY)
@require_POST
def member_role(request, project, role, user_id: int):
    form = MemberRoleForm(request.POST)
    try:
        user = _member_user(project, user_id)
        if not form.is_valid():
            raise ServiceError("Choose a role: " + ", ".join(label for _, label in Role.choices) + ".")
        membership = services.membership_set(project=project, actor=request.user, user=user, role=form.cleaned_data["role"])
    except ServiceError as error:
        return _members_page(request, project, role, error=error, status=error.status_code)
    messages.success(request, f"{user.username} is now {membership.get_role_display()}.")
    return redirect("project-members", project.pk)


@project_page(ADMIN_ONLY)
@require_POST
def member_remove(request, project, role, user_id: int):
    try:
        user = _member_user(project, user_id)
        services.membership_remove(project=project, actor=request.user, user=user)
    except ServiceError as error:
        return _members_page(request, project, role, error=error, status=error.status_code)
    messages.success(request, f"{user.username} was removed from the project. Their judgments are kept.")
    if user == request.user and not request.user.is_superuser:
        return redirect("home")
    return redirect("project-members", project.pk)


@project_page(ADMIN_ONLY)
@require_POST
def member_unpause(request, project, role, user_id: int):
    """Lift a pause (e.g. low gold accuracy); the annotator gets work again."""
    from feedback_site.annotation.services import membership_unpause

    try:
        user = _member_user(project, user_id)
        membership_unpause(project=project, user=user, actor=request.user)
    except ServiceError as error:
        return _members_page(request, project, role, error=error, status=error.status_code)
    messages.success(request, f"{user.username} is no longer paused and gets new pairs again.")
    return redirect("project-members", project.pk)


# ------------------------------------------------------------------------------------------------
# Imports
# ------------------------------------------------------------------------------------------------


@project_page(STAFF_ROLES)
@require_http_methods(["GET", "POST"])
def project_imports(request, project, role):
    status = 200
    if request.method == "POST":
        form = ImportForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            result = run_service(
                form,
                lambda: services.import_file(
                    project=project,
                    actor=request.user,
                    kind=form.cleaned_data["kind"],
                    filename=upload.name,
                    data=upload.read(),
                    queue_for_annotation=form.cleaned_data["queue_for_annotation"],
                ),
            )
            if result is not None:
                what = f"{result.prompts:,} prompt{'s' if result.prompts != 1 else ''}"
                if result.pairs:
                    what += f" and {result.pairs:,} pair{'s' if result.pairs != 1 else ''}"
                messages.success(request, f"Imported {what} from {result.batch.filename}.")
                return redirect("project-imports", project.pk)
        status = form_status(form)
    else:
        form = ImportForm()
    context = project_context(
        project,
        role,
        form=form,
        batches=ImportBatch.objects.filter(project=project).select_related("created_by").order_by("-id")[:100],
        queue_defaults={kind.value: QUEUE_DEFAULTS[kind] for kind in ImportKind},
        max_bytes=settings.IMPORT_MAX_BYTES,
    )
    return render(request, "projects/imports.html", context, status=status)
