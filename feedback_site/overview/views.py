"""The project pages that show or change more than the projects app owns: new project (which
registers the base policy), the overview (annotation progress, generation runs, snapshots, model
versions, with the settings and guideline forms) and members (judgment counts, pauses).

They sit in the top layer (docs/architecture.md) so they may read every app below; the pages of
one app's data live in that app. The templates are the projects app's (`projects/*.html`).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from feedback_site.annotation.models import Prompt, Split
from feedback_site.annotation.selectors import annotator_progress, current_guideline, project_progress
from feedback_site.annotation.services import membership_unpause
from feedback_site.core.errors import Forbidden, NotFound, ServiceError
from feedback_site.generation.models import GenerationRun
from feedback_site.projects import services as projects_services
from feedback_site.projects.forms import GuidelineForm, MemberAddForm, MemberRoleForm, ProjectCreateForm, ProjectSettingsForm
from feedback_site.projects.models import Membership, Project, Role
from feedback_site.projects.permissions import ALL_ROLES, STAFF_ROLES, can_create_projects
from feedback_site.projects.views import ADMIN_ONLY, error_page, form_status, project_context, project_page, run_service
from feedback_site.rankings.models import RankingTask
from feedback_site.ratings.models import RatingTask
from feedback_site.registry import services as registry_services
from feedback_site.registry.models import ModelVersion
from feedback_site.snapshots.models import Snapshot

User = get_user_model()


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
            project = run_service(form, lambda: registry_services.project_create(creator=request.user, **form.cleaned_data))
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
    context["has_rating_tasks"] = RatingTask.objects.filter(project=project, is_complete=False, overlap__gt=0).exists()
    context["has_ranking_tasks"] = RankingTask.objects.filter(project=project, is_complete=False, overlap__gt=0).exists()
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
@require_http_methods(["GET", "POST"])
def project_settings(request, project, role):
    if request.method == "GET":
        # The settings form lives on the project page (the README and links send people here).
        return redirect(reverse("project-detail", args=[project.pk]) + "#settings")
    form = ProjectSettingsForm.for_project(project, request.POST)
    if form.is_valid():
        changed = form.changed_values()
        if not changed:
            messages.info(request, "Nothing changed.")
            return redirect("project-detail", project.pk)
        updated = run_service(form, lambda: projects_services.project_update(project=project, actor=request.user, **changed))
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
            form, lambda: projects_services.guideline_publish(project=project, author=request.user, text=form.cleaned_data["text"])
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
            form, lambda: projects_services.membership_set(project=project, actor=request.user, user=user, role=form.cleaned_data["role"])
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
        membership = projects_services.membership_set(project=project, actor=request.user, user=user, role=form.cleaned_data["role"])
    except ServiceError as error:
        return _members_page(request, project, role, error=error, status=error.status_code)
    messages.success(request, f"{user.username} is now {membership.get_role_display()}.")
    return redirect("project-members", project.pk)


@project_page(ADMIN_ONLY)
@require_POST
def member_remove(request, project, role, user_id: int):
    try:
        user = _member_user(project, user_id)
        projects_services.membership_remove(project=project, actor=request.user, user=user)
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
    try:
        user = _member_user(project, user_id)
        membership_unpause(project=project, user=user, actor=request.user)
    except ServiceError as error:
        return _members_page(request, project, role, error=error, status=error.status_code)
    messages.success(request, f"{user.username} is no longer paused and gets new pairs again.")
    return redirect("project-members", project.pk)
