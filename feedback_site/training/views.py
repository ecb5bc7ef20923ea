"""Training pages: launch a run (SFT, reward model, DPO, PPO, RLOO, GRPO), watch it live, cancel it, and
the project's model versions.

The run page renders the run once and then `training/run_live.js` polls the REST API
(`api-training-run` and `api-training-run-metrics?after=STEP`) every two seconds until the run is
finished, redrawing its charts (core/static/core/charts.js, Chart.js) from the new points; nothing
reloads the page.
"""

from __future__ import annotations

import json
import math
from decimal import ROUND_HALF_UP, Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from feedback_site.core.errors import ServiceError
from feedback_site.projects.permissions import STAFF_ROLES, project_role
from feedback_site.projects.views import error_page, form_status, project_context, project_page, run_service
from feedback_site.registry.models import ModelKind, ModelVersion
from feedback_site.training import services
from feedback_site.training.forms import TrainingLaunchForm, method_defaults
from feedback_site.training.models import NEEDS_DEMONSTRATIONS, NEEDS_REWARD_MODEL, TAKES_RATINGS, TERMINAL_STATUSES, TrainingRun

# Friendly names of the metrics the rlhf trainers report (TRL's names for reward/DPO/RLOO/GRPO,
# ours for PPO). Keys not listed are shown under their own name. The order is the table's order.
METRIC_LABELS = {
    "loss": "Loss",
    "learning_rate": "Learning rate",
    "tokens_per_s": "Tokens / s",
    "grad_norm": "Gradient norm",
    # reward model
    "accuracy": "Reward accuracy (strict)",
    "margin": "Reward margin",
    "tie_fraction": "Tie fraction",
    # DPO
    "rewards/chosen": "Chosen reward",
    "rewards/rejected": "Rejected reward",
    "rewards/margins": "Reward margin",
    "rewards/accuracies": "Preference accuracy",
    "logps/chosen": "Log-prob, chosen",
    "logps/rejected": "Log-prob, rejected",
    "logits/chosen": "Logits, chosen",
    "logits/rejected": "Logits, rejected",
    # PPO, RLOO, GRPO
    "reward": "Mean reward",
    "reward_std": "Reward std",
    "score": "Score",
    "rlhf_reward": "RLHF reward (score − KL)",
    "non_score_reward": "KL penalty",
    "kl": "KL to reference",
    "approx_kl": "Approx. KL of the update",
    "kl_coef": "KL coefficient",
    "entropy": "Entropy",
    "clip_fraction": "Clip fraction",
    "value_clip_fraction": "Value clip fraction",
    "clip_ratio/region_mean": "Clip ratio",
    "clip_ratio/low_mean": "Clip ratio, low",
    "clip_ratio/high_mean": "Clip ratio, high",
    "policy_loss": "Policy loss",
    "value_loss": "Value loss",
    "response_length": "Response length",
    "completions/mean_length": "Completion length",
    "eos_fraction": "Ended with EOS",
    "completions/clipped_ratio": "Truncated completions",
    "frac_reward_zero_std": "Groups with equal rewards",
    # SFT (TRL's SFTTrainer)
    "mean_token_accuracy": "Token accuracy",
    # final (held-out) metrics of a registered version
    "eval_accuracy": "Held-out accuracy",
    "eval_margin": "Held-out margin",
    "eval_tie_fraction": "Held-out tie fraction",
    "eval_rewards/margins": "Held-out margin",
    "eval_rewards/accuracies": "Held-out accuracy",
    "eval_loss": "Held-out loss",
    "eval_loss_before": "Held-out loss of the parent",
    "eval_mean_token_accuracy": "Held-out token accuracy",
    "epoch": "Epoch",
    "num_tokens": "Tokens seen",
}

# One chart per group; a point's keys outside every group get a chart per "prefix/" or per key.
CHART_GROUPS = [
    {"title": "Loss", "keys": ["loss", "eval_loss"]},
    {"title": "Learning rate", "keys": ["learning_rate"]},
    {"title": "Token accuracy", "keys": ["mean_token_accuracy"]},
    {"title": "Reward accuracy and ties", "keys": ["accuracy", "tie_fraction"]},
    {"title": "Reward margin", "keys": ["margin"]},
    {"title": "Implicit rewards (β · log-ratio)", "keys": ["rewards/chosen", "rewards/rejected", "rewards/margins"]},
    {"title": "Preference accuracy", "keys": ["rewards/accuracies"]},
    {"title": "Log-probabilities", "keys": ["logps/chosen", "logps/rejected"]},
    {"title": "Logits", "keys": ["logits/chosen", "logits/rejected"]},
    {"title": "Reward", "keys": ["reward", "score", "rlhf_reward", "non_score_reward", "reward_std"]},
    {"title": "KL", "keys": ["kl", "approx_kl"]},
    {"title": "KL coefficient", "keys": ["kl_coef"]},
    {"title": "Entropy", "keys": ["entropy"]},
    {"title": "Clipping", "keys": ["clip_fraction", "value_clip_fraction"], "prefixes": ["clip_ratio/"]},
    {"title": "Policy and value loss", "keys": ["policy_loss", "value_loss"]},
    {
        "title": "Completion length (tokens)",
        "keys": [
            "response_length",
            "completions/mean_length",
            "completions/min_length",
            "completions/max_length",
            "completions/mean_terminated_length",
        ],
    },
    {"title": "Completion endings", "keys": ["eos_fraction", "completions/clipped_ratio", "frac_reward_zero_std"]},
    {"title": "Throughput (tokens / s)", "keys": ["tokens_per_s"]},
    {"title": "Gradient norm", "keys": ["grad_norm"]},
]
# Bookkeeping values that are not worth a chart (they are in the table).
UNCHARTED = ["epoch", "eta_s", "num_tokens", "step", "total_flos", "train_runtime"]

# A version's key metrics on the models page, first match wins per label.
KEY_METRICS = [
    "eval_accuracy",
    "eval_tie_fraction",
    "eval_margin",
    "eval_rewards/accuracies",
    "eval_rewards/margins",
    "accuracy",
    "rewards/accuracies",
    "rewards/margins",
    "reward",
    "kl",
    "loss",
    # SFT: held-out loss after, and of the parent before (lower after = it learned the demonstrations)
    "eval_loss",
    "eval_loss_before",
]


def format_number(value) -> str:
    """Four significant digits; small and huge values in exponent form. Same output as the
    page's JavaScript (`fmt` in run_live.js), so a live update does not change how a value looks."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    # Round the exact binary value half away from zero, as JavaScript's toPrecision does.
    exact = Decimal(value)
    rounded = exact.quantize(Decimal(1).scaleb(exact.adjusted() - 3), rounding=ROUND_HALF_UP)
    if abs(value) < 1e-3 or abs(value) >= 1e6:
        mantissa, exponent = f"{rounded:.3e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent):+d}"
    number = float(rounded)
    return str(int(number)) if number.is_integer() else repr(number)


def format_duration(seconds) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def metric_rows(values: dict) -> list[dict]:
    order = {key: index for index, key in enumerate(METRIC_LABELS)}
    keys = sorted((k for k in values if k not in ("step",)), key=lambda k: (order.get(k, len(order)), k))
    return [{"key": k, "label": METRIC_LABELS.get(k, k), "value": format_number(values[k])} for k in keys]


# ------------------------------------------------------------------------------------------------
# Launch and list
# ------------------------------------------------------------------------------------------------


def _training_context(project, role, form):
    runs = (
        TrainingRun.objects.filter(project=project)
        .select_related("snapshot", "demonstration_snapshot", "rating_snapshot", "parent", "reward_model", "output_version", "created_by")
        .order_by("-id")[:50]
    )
    return project_context(
        project,
        role,
        form=form,
        runs=runs,
        has_snapshots=any(form.fields[name].queryset.exists() for name in ("snapshot", "demonstration_snapshot", "rating_snapshot")),
        needs_reward_model=" ".join(sorted(NEEDS_REWARD_MODEL)),
        needs_demonstrations=" ".join(sorted(NEEDS_DEMONSTRATIONS)),
        takes_ratings=" ".join(sorted(TAKES_RATINGS)),
    )


@project_page(STAFF_ROLES)
@require_http_methods(["GET", "POST"])
def project_training(request, project, role):
    status = 200
    if request.method == "POST":
        form = TrainingLaunchForm(request.POST, project=project)
        if form.is_valid():
            arguments = form.launch_arguments()
            # No transaction around this call: when the queue is down the service records the run
            # as failed with the reason, and that row must survive the error.
            result = run_service(form, lambda: services.training_launch(project=project, actor=request.user, **arguments))
            if result is not None:
                run, created = result
                if created:
                    messages.success(request, f"{run.get_method_display()} run {run.pk} queued. This page updates as it trains.")
                else:
                    messages.info(
                        request,
                        f"The same run (#{run.pk}, same method, data, parent and config) is already {run.status}; "
                        "you are looking at it. Nothing new was started.",
                    )
                return redirect("training-run", run.pk)
        status = form_status(form)
    else:
        form = TrainingLaunchForm(project=project)
    return render(request, "training/training.html", _training_context(project, role, form), status=status)


# ------------------------------------------------------------------------------------------------
# One run, live
# ------------------------------------------------------------------------------------------------


def _config_rows(run) -> list[dict]:
    try:
        defaults = method_defaults(run.method)
    except Exception:  # a method renamed since this run; show its config as stored
        defaults = {}
    return [
        {
            "key": key,
            "value": value if isinstance(value, str) else json.dumps(value),
            "is_none": value is None,
            "changed": key in defaults and defaults[key] != value,
        }
        for key, value in (run.config or {}).items()
    ]


def _run_page(request, run, *, error: ServiceError | None = None, status: int = 200):
    role = project_role(request.user, run.project)
    percent = min(100, round(100 * run.step / run.total_steps)) if run.total_steps else 0
    context = project_context(
        run.project,
        role,
        run=run,
        error=error,
        percent=percent,
        # The worker estimates only after two reports; the trainer's own eta_s is there sooner.
        eta=format_duration(run.eta_seconds if run.eta_seconds is not None else (run.latest_metrics or {}).get("eta_s")),
        metric_rows=metric_rows(run.latest_metrics or {}),
        config_rows=_config_rows(run),
        api_url=reverse("api-training-run", args=[run.pk]),
        metrics_url=reverse("api-training-run-metrics", args=[run.pk]),
        models_url=reverse("project-models", args=[run.project_id]),
        terminal_statuses=" ".join(sorted(TERMINAL_STATUSES)),
        chart_spec={"groups": CHART_GROUPS, "labels": METRIC_LABELS, "uncharted": UNCHARTED},
        headline={
            key: format_number(value) if (value := (run.latest_metrics or {}).get(key)) is not None else "—"
            for key in ("loss", "learning_rate", "tokens_per_s")
        },
    )
    return render(request, "training/run_detail.html", context, status=status)


@login_required
@require_http_methods(["GET"])
def run_detail(request, run_id: int):
    try:
        run = services.training_get(run_id=run_id, actor=request.user)
    except ServiceError as error:
        return error_page(request, error)
    return _run_page(request, run)


@login_required
@require_POST
def run_cancel(request, run_id: int):
    try:
        run = services.training_get(run_id=run_id, actor=request.user)
    except ServiceError as error:
        return error_page(request, error)
    try:
        run = services.training_cancel(run=run, actor=request.user)
    except ServiceError as error:
        run.refresh_from_db()
        return _run_page(request, run, error=error, status=error.status_code)
    if run.is_terminal:
        messages.success(request, "Run cancelled before it started.")
    else:
        messages.info(request, "Cancel requested; the worker stops at the next step and keeps its last checkpoint.")
    return redirect("training-run", run.pk)


# ------------------------------------------------------------------------------------------------
# Model versions
# ------------------------------------------------------------------------------------------------


def _key_metrics(version) -> list[dict]:
    metrics = version.metrics or {}
    shown, labels = [], set()
    for key in KEY_METRICS:
        value = metrics.get(key)
        label = METRIC_LABELS.get(key, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and label not in labels:
            labels.add(label)
            shown.append({"key": key, "label": label, "value": format_number(value)})
        if len(shown) == 3:
            break
    return shown


@project_page(STAFF_ROLES)
@require_http_methods(["GET"])
def project_models(request, project, role):
    kind = request.GET.get("kind")
    # produced_by__demonstration_snapshot: an SFT version has no preference snapshot; the page shows
    # its run's demonstration snapshot instead, in the same query.
    versions = ModelVersion.objects.filter(project=project).select_related(
        "parent", "snapshot", "produced_by", "produced_by__demonstration_snapshot", "produced_by__rating_snapshot", "created_by"
    )
    counts = ModelVersion.objects.filter(project=project).aggregate(
        policy=Count("pk", filter=Q(kind=ModelKind.POLICY)), reward=Count("pk", filter=Q(kind=ModelKind.REWARD))
    )
    if kind in ModelKind.values:
        versions = versions.filter(kind=kind)
    else:
        kind = ""
    versions = list(versions.order_by("kind", "-number"))
    for version in versions:
        version.key_metrics = _key_metrics(version)
    context = project_context(project, role, versions=versions, kind=kind, counts=counts, kinds=ModelKind.choices)
    return render(request, "training/models.html", context)
