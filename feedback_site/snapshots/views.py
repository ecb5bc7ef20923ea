"""Snapshot page: freeze the current judgments into a versioned dataset and download it; queue
answers for thumbs up / down and freeze the ratings into KTO snapshots.

Downloads are served by the REST API (`api-snapshot-download`), which checks each file against
its recorded hash before sending it.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from feedback_site.annotation.selectors import project_progress
from feedback_site.projects.forms import ServiceErrorForm
from feedback_site.projects.permissions import STAFF_ROLES
from feedback_site.projects.views import form_status, project_context, project_page, run_service
from feedback_site.quality.rating_stats import rating_statistics
from feedback_site.ratings import services as rating_services
from feedback_site.ratings.models import RatingSnapshot
from feedback_site.snapshots import services
from feedback_site.snapshots.models import Snapshot

AGGREGATION_LABELS = {
    "majority": "Majority vote",
    "gold_weighted": "Weighted by gold accuracy",
    "dawid_skene": "Dawid–Skene estimate",
}
OPTION_FIELDS = ("exclude_too_fast", "exclude_position_biased", "exclude_paused", "include_simulated")

DOWNLOAD_LINKS = [
    ("jsonl", "Preferences (JSONL)"),
    ("parquet", "Preferences (Parquet)"),
    ("pairs", "Pairs"),
    ("judgments", "Raw judgments"),
]


class SnapshotForm(ServiceErrorForm):
    aggregation = forms.ChoiceField(
        choices=[(rule, AGGREGATION_LABELS.get(rule, rule)) for rule in services.AGGREGATION_RULES],
        initial="majority",
    )
    include_prelabelled = forms.BooleanField(
        required=False,
        initial=True,
        label="Include pre-labelled pairs",
        help_text="Imported pairs that came with a label and have no judgments use their import label.",
    )
    exclude_too_fast = forms.BooleanField(
        required=False, label="Leave out too-fast judgments", help_text="Judgments made faster than the project's minimum seconds."
    )
    exclude_position_biased = forms.BooleanField(
        required=False,
        label="Leave out position-biased annotators",
        help_text="Annotators whose left-choice rate fails a binomial test at p < 0.05.",
    )
    exclude_paused = forms.BooleanField(required=False, label="Leave out paused annotators")
    include_simulated = forms.BooleanField(
        required=False,
        label="Use simulated annotators' judgments",
        help_text="Off by default: simulated judgments stay in the raw file only.",
    )
    note = forms.CharField(required=False, max_length=500, help_text="Optional, e.g. “round 1, before DPO”.")

    service_error_fields = {"bad_aggregation": "aggregation", "bad_note": "note"}

    def service_kwargs(self) -> dict:
        data = dict(self.cleaned_data)
        data["options"] = {key: data.pop(key) for key in OPTION_FIELDS}
        return data


class RatingQueueForm(ServiceErrorForm):
    overlap = forms.IntegerField(label="Ratings per answer", help_text="From distinct annotators (1 to 20).")
    generation_run_id = forms.IntegerField(
        required=False,
        label="Only answers of generation run #",
        help_text="Leave empty for every answer to a training prompt. Answers the safety screen hides are never queued.",
    )

    service_error_fields = {"bad_overlap": "overlap", "bad_generation_run_id": "generation_run_id"}


@project_page(STAFF_ROLES)
@require_POST
def rating_tasks_create(request, project, role):
    form = RatingQueueForm(request.POST, prefix="ratings")
    if form.is_valid():
        created = run_service(form, lambda: rating_services.tasks_create(project=project, actor=request.user, **form.cleaned_data))
        if created is not None:
            messages.success(request, f"{created} answer{'s' if created != 1 else ''} queued for rating.")
            return redirect("project-snapshots", project.pk)
    return _page(request, project, role, rating_form=form, status=form_status(form))


@project_page(STAFF_ROLES)
@require_POST
def rating_snapshot_create(request, project, role):
    form = ServiceErrorForm(request.POST)
    form.is_valid()
    result = run_service(form, lambda: rating_services.snapshot_create(project=project, actor=request.user))
    if result is None:
        return _page(request, project, role, rating_snapshot_form=form, status=form_status(form))
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
    return _page(request, project, role, form=form, status=status)


def _page(request, project, role, *, form=None, rating_form=None, rating_snapshot_form=None, status=200):
    context = project_context(
        project,
        role,
        form=form or SnapshotForm(),
        snapshots=Snapshot.objects.filter(project=project).select_related("created_by").order_by("-number"),
        progress=project_progress(project),
        download_links=DOWNLOAD_LINKS,
        aggregation_labels=AGGREGATION_LABELS,
        rating_form=rating_form or RatingQueueForm(prefix="ratings", initial={"overlap": project.overlap}),
        rating_snapshot_form=rating_snapshot_form,
        rating_stats=rating_statistics(project),
        rating_snapshots=RatingSnapshot.objects.filter(project=project).select_related("created_by").order_by("-number"),
    )
    return render(request, "snapshots/snapshots.html", context, status=status)
