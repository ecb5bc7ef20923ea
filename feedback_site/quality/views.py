"""Quality pages: the staff dashboard, an annotator's own statistics, and adjudication."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from feedback_site.annotation.models import Preference
from feedback_site.core.charts import series_chart
from feedback_site.core.errors import Invalid, ServiceError
from feedback_site.projects.permissions import ALL_ROLES, STAFF_ROLES
from feedback_site.projects.views import error_page, project_context, project_page
from feedback_site.quality import selectors, services
from feedback_site.registry.models import ModelKind, ModelVersion

SORT_KEYS = {
    "annotator": "username",
    "count": "count",
    "gold": "gold_accuracy",
    "agreement": "agreement",
    "left": "left_rate",
    "p": "left_p_value",
    "median": "median_seconds",
    "fast": "too_fast",
    "paused": "paused",
}
LABEL_NAMES = dict(Preference.choices)


def _params(request):
    from feedback_site.quality.api import bias_alpha_param, bucket_param

    return bias_alpha_param(request), bucket_param(request)


def _sorted(rows: list[dict], key: str, descending: bool) -> list[dict]:
    field = SORT_KEYS[key]
    present = [r for r in rows if r[field] is not None]
    missing = [r for r in rows if r[field] is None]  # unknown values always last
    present.sort(key=lambda r: (r[field], r["username"]), reverse=descending)
    return present + missing


def _fmt_rate(value):
    return "—" if value is None else f"{value:.1%}"


@project_page(STAFF_ROLES)
@require_http_methods(["GET"])
def quality_dashboard(request, project, role):
    try:
        alpha, bucket = _params(request)
    except ServiceError as error:
        return error_page(request, error, project=project)
    sort = request.GET.get("sort", "count")
    if sort not in SORT_KEYS:
        sort = "count"
    descending = request.GET.get("dir", "desc") != "asc"
    data = selectors.dashboard(project, bias_alpha=alpha, bucket=bucket)
    rows = _sorted(data["annotators"], sort, descending)
    agreement = data["agreement"]
    over_time = agreement["over_time"]
    per_hour = data["progress"]["per_hour"]
    context = project_context(
        project,
        role,
        data=data,
        rows=rows,
        sort=sort,
        descending=descending,
        alpha=alpha,
        bucket=bucket,
        sort_columns=[
            ("annotator", "Annotator"),
            ("count", "Judgments"),
            ("gold", "Gold accuracy"),
            ("agreement", "Agreement"),
            ("left", "Left rate"),
            ("p", "p (binomial)"),
            ("median", "Median s"),
            ("fast", "Too fast"),
            ("paused", "Paused"),
        ],
        throughput_chart=series_chart(
            "throughput-chart",
            "bar",
            title="Judgments per hour",
            labels=[b["hour"].strftime("%m-%d %H:00") for b in per_hour],
            series={"Judgments": [b["judgments"] for b in per_hour]},
            x_label="Hour (UTC)",
            y_label="Judgments",
            integer=True,
        ),
        agreement_chart=series_chart(
            "agreement-chart",
            "line",
            title=f"Agreement per {bucket}",
            labels=[str(b["start"]) for b in over_time],
            series={
                "Raw agreement": [b["pairwise_agreement"] for b in over_time],
                "Krippendorff α": [b["krippendorff_alpha"] for b in over_time],
            },
            x_label=f"{bucket.capitalize()} starting",
            y_label="Agreement",
            y_max=1.0,
            empty="No overlapping judgments yet",
            fmt=lambda v: "—" if v is None else f"{v:.3f}",
        ),
        label_chart=series_chart(
            "label-chart",
            "bar",
            title="Label distribution",
            labels=[LABEL_NAMES.get(k, k) for k in data["labels"]["preferred"]],
            series={"Judgments": list(data["labels"]["preferred"].values())},
            x_label="Label",
            y_label="Judgments",
            integer=True,
        ),
        reward_models=ModelVersion.objects.filter(project=project, kind=ModelKind.REWARD).order_by("-number"),
    )
    return render(request, "quality/dashboard.html", context)


@project_page(STAFF_ROLES)
@require_POST
def quality_score_pairs(request, project, role):
    try:
        reward_model = int(request.POST.get("reward_model", ""))
    except ValueError:
        messages.error(request, "Choose a reward model.")
        return redirect("project-quality", project.pk)
    try:
        services.uncertainty_request(project=project, actor=request.user, reward_model_id=reward_model)
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Scoring queued: when the worker finishes, the closest-scored pairs are served first.")
    return redirect("project-quality", project.pk)


@project_page(ALL_ROLES)
@require_http_methods(["GET"])
def my_statistics(request, project, role):
    stats = selectors.my_statistics(project, request.user)
    return render(request, "quality/me.html", project_context(project, role, stats=stats))


class AdjudicationForm(forms.Form):
    label = forms.ChoiceField(choices=Preference.choices)
    note = forms.CharField(required=False, max_length=services.MAX_NOTE, widget=forms.Textarea(attrs={"rows": 2}))


PAGE = 20


@project_page(STAFF_ROLES)
@require_http_methods(["GET"])
def adjudication_list(request, project, role):
    state = request.GET.get("status", "open")
    if state not in ("open", "adjudicated", "all"):
        return error_page(request, Invalid("status must be open, adjudicated or all"), project=project)
    try:
        page = max(1, int(request.GET.get("page", 1)))
    except ValueError:
        page = 1
    total, items = selectors.disagreements(project, status=state, limit=PAGE, offset=(page - 1) * PAGE)
    context = project_context(
        project,
        role,
        items=items,
        total=total,
        state=state,
        page=page,
        has_next=page * PAGE < total,
        labels=Preference.choices,
    )
    return render(request, "quality/adjudication.html", context)


@project_page(STAFF_ROLES)
@require_POST
def adjudicate(request, project, role, pair_id: int):
    form = AdjudicationForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a label (A, B, tie or both bad); the note is at most 2,000 characters.")
        return redirect("project-adjudication", project.pk)
    from feedback_site.annotation.models import Pair

    if not Pair.objects.filter(pk=pair_id, project=project).exists():
        return error_page(request, Invalid("That pair is not in this project."), project=project)
    try:
        _, created = services.adjudicate(pair_id=pair_id, actor=request.user, **form.cleaned_data)
    except ServiceError as error:
        return error_page(request, error, project=project)
    messages.success(
        request, f"Pair {pair_id} {'adjudicated' if created else 're-adjudicated'}: {LABEL_NAMES[form.cleaned_data['label']]}."
    )
    state = request.POST.get("status", "open")
    state = state if state in ("open", "adjudicated", "all") else "open"
    return redirect(f"{reverse('project-adjudication', args=[project.pk])}?status={state}")
