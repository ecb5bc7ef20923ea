"""Pages of the model registry: the lineage timeline, promote / roll back, download."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from feedback_site.core.errors import ServiceError
from feedback_site.projects.permissions import STAFF_ROLES
from feedback_site.projects.views import error_page, project_context, project_page
from feedback_site.registry import services
from feedback_site.registry.api import download_response
from feedback_site.registry.models import ModelKind, ModelVersion

KEY_METRICS = ("loss", "train_loss", "eval_loss", "accuracy", "eval_accuracy", "reward", "mean_reward", "kl", "objective/kl")


def _key_metrics(metrics: dict) -> list[tuple[str, str]]:
    out = []
    for key in KEY_METRICS:
        value = (metrics or {}).get(key)
        if isinstance(value, (int, float)):
            out.append((key, f"{value:.4g}"))
    return out[:4]


def timeline_rows(project):
    """Versions in registration order with lane (policy / reward) positions for the SVG."""
    from feedback_site.evaluation.models import EvaluationRun, EvaluationStatus

    versions = list(
        ModelVersion.objects.filter(project=project)
        .select_related("parent", "snapshot", "produced_by", "produced_by__demonstration_snapshot")
        .order_by("created_at", "id")
    )
    latest_eval = {}
    for run in EvaluationRun.objects.filter(project=project, status=EvaluationStatus.SUCCEEDED).order_by("id"):
        target = run.policy_id if run.kind == "policy" else run.reward_model_id
        latest_eval[target] = run
    rows, x_of = [], {}
    for index, version in enumerate(versions):
        x = 40 + index * 90
        y = 40 if version.kind == ModelKind.POLICY else 110
        x_of[version.pk] = (x, y)
        run = latest_eval.get(version.pk)
        summary = None
        if run is not None:
            if run.kind == "policy" and (run.results or {}).get("win_rate"):
                wr = run.results["win_rate"]
                summary = f"win {wr['win_rate']:.0%} [{wr['low']:.0%}, {wr['high']:.0%}] vs v{run.baseline.number}"
            elif run.kind == "reward" and (run.results or {}).get("reward_accuracy"):
                acc = run.results["reward_accuracy"]
                summary = f"accuracy {acc['accuracy']:.0%} (ties {acc['tie_fraction']:.0%})"
        rows.append(
            {
                "version": version,
                "x": x,
                "y": y,
                "metrics": _key_metrics(version.metrics),
                "evaluation": run,
                "evaluation_summary": summary,
                "is_current": project.current_policy_id == version.pk,
                "training_run": version.training_run,
            }
        )
    edges = [
        {"x1": x_of[r["version"].parent_id][0], "y1": x_of[r["version"].parent_id][1], "x2": r["x"], "y2": r["y"]}
        for r in rows
        if r["version"].parent_id in x_of
    ]
    return rows, edges, 80 + max(0, len(rows) - 1) * 90


@project_page(STAFF_ROLES)
@require_GET
def project_versions(request, project, role):
    rows, edges, width = timeline_rows(project)
    return render(
        request,
        "registry/timeline.html",
        project_context(
            project,
            role,
            rows=rows,
            edges=edges,
            svg_width=width,
            history=services.pointer_history(project)[:50],
            can_roll_back=services.can_roll_back(project),
        ),
    )


@login_required
@require_POST
def version_promote(request, version_id: int):
    try:
        version = services.version_get(version_id=version_id, actor=request.user)
        services.version_promote(version.project, version, request.user, reason=request.POST.get("reason", "")[:500])
    except ServiceError as error:
        return error_page(request, error)
    messages.success(request, f"{version.label} is now the current policy.")
    return redirect("project-versions", version.project_id)


@project_page(STAFF_ROLES)
@require_POST
def version_rollback(request, project, role):
    try:
        change = services.version_rollback(project, request.user, reason=request.POST.get("reason", "")[:500])
    except ServiceError as error:
        return error_page(request, error, project=project)
    messages.success(request, f"Rolled back: the current policy is {change.to_version.label} again.")
    return redirect("project-versions", project.pk)


@login_required
@require_GET
def version_download(request, version_id: int):
    try:
        version = services.version_get(version_id=version_id, actor=request.user)
        return download_response(version, request.user)
    except ServiceError as error:
        return error_page(request, error)
