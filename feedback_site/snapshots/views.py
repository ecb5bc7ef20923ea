"""Snapshot page: freeze the current judgments into a versioned dataset and download it; queue
answers for thumbs up / down and freeze the ratings into KTO snapshots (conversations have their
own views in `conversation_views`; the page is rendered by `page.render_page`).

Downloads are served by the REST API (`api-snapshot-download`), which checks each file against
its recorded hash before sending it.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from feedback_site.projects.forms import ServiceErrorForm
from feedback_site.projects.permissions import STAFF_ROLES
from feedback_site.projects.views import form_status, project_page, run_service
from feedback_site.ratings import services as rating_services
from feedback_site.snapshots import services
from feedback_site.snapshots.forms import RatingQueueForm, SnapshotForm
from feedback_site.snapshots.page import render_page


@project_page(STAFF_ROLES)
@require_POST
def rating_tasks_create(request, project, role):
    form = RatingQueueForm(request.POST, prefix="ratings")
    if form.is_valid():
        created = run_service(form, lambda: rating_services.tasks_create(project=project, actor=request.user, **form.cleaned_data))
        if created is not None:
            messages.success(request, f"{created} answer{'s' if created != 1 else ''} queued for rating.")
            return redirect("project-snapshots", project.pk)
    return render_page(request, project, role, rating_form=form, status=form_status(form))


@project_page(STAFF_ROLES)
@require_POST
def rating_snapshot_create(request, project, role):
    form = ServiceErrorForm(request.POST)
    form.is_valid()
    result = run_service(form, lambda: rating_services.snapshot_create(project=project, actor=request.user))
    if result is None:
        return render_page(request, project, role, rating_snapshot_form=form, status=form_status(form))
    snapshot, created = result
    if created:
        messages.success(request, f"Rating snapshot {snapshot.number}: {snapshot.desirable_count} up, {snapshot.undesirable_count} down.")
    else:
        messages.info(request, f"Nothing changed since rating snapshot {snapshot.number}.")
    return redirect("project-snapshots", project.pk)


@project_page(STAFF_ROLES)
@require_http_methods(["GET", "POST"])
def project_snapshots(request, project, role):
    status = 200
    if request.method == "POST":
        form = SnapshotForm(request.POST)
        if form.is_valid():
            snapshot = run_service(form, lambda: services.snapshot_start(project=project, actor=request.user, **form.service_kwargs()))
            if snapshot is not None:
                messages.success(
                    request,
                    f"Snapshot {snapshot.number} is being built in the background; its progress shows below.",
                )
                return redirect("project-snapshots", project.pk)
        status = form_status(form)
    else:
        form = SnapshotForm()
    return render_page(request, project, role, form=form, status=status)
