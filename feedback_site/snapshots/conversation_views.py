"""The Snapshots page's conversations section: staff queue the project's training prompts as
conversations and freeze the judged turns into conversation snapshots (the same services as the
API; the page itself is `views._page`)."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from feedback_site.annotation.models import Prompt, Split
from feedback_site.conversations import services as conversation_services
from feedback_site.conversations import snapshots as conversation_snapshots
from feedback_site.core.errors import Invalid
from feedback_site.projects.forms import ServiceErrorForm
from feedback_site.projects.permissions import STAFF_ROLES
from feedback_site.projects.views import form_status, project_page, run_service
from feedback_site.snapshots.forms import ConversationQueueForm
from feedback_site.snapshots.page import render_page


def _unqueued_prompts(project) -> list[int]:
    prompts = Prompt.objects.filter(project=project, split=Split.TRAIN, conversation_tasks__isnull=True).order_by("id")
    return list(prompts.values_list("pk", flat=True))


@project_page(STAFF_ROLES)
@require_POST
def conversation_tasks_create(request, project, role):
    form = ConversationQueueForm(request.POST, prefix="conversations")
    if form.is_valid():

        def queue():
            prompt_ids = _unqueued_prompts(project)
            if not prompt_ids:
                raise Invalid("every training prompt is already queued as a conversation; import prompts first", code="no_prompts")
            return conversation_services.tasks_create(project=project, actor=request.user, prompt_ids=prompt_ids, **form.cleaned_data)

        tasks = run_service(form, queue)
        if tasks is not None:
            messages.success(request, f"{len(tasks)} conversation{'s' if len(tasks) != 1 else ''} queued.")
            return redirect("project-snapshots", project.pk)
    return render_page(request, project, role, conversation_form=form, status=form_status(form))


@project_page(STAFF_ROLES)
@require_POST
def conversation_snapshot_create(request, project, role):
    form = ServiceErrorForm(request.POST)
    form.is_valid()
    result = run_service(form, lambda: conversation_snapshots.snapshot_create(project=project, actor=request.user))
    if result is None:
        return render_page(request, project, role, conversation_snapshot_form=form, status=form_status(form))
    snapshot, created = result
    if created:
        messages.success(
            request, f"Conversation snapshot {snapshot.number}: {snapshot.example_count} pairs from {snapshot.branch_point_count} turns."
        )
    else:
        messages.info(request, f"Nothing changed since conversation snapshot {snapshot.number}.")
    return redirect("project-snapshots", project.pk)
