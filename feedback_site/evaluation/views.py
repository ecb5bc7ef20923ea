"""Pages of the evaluation app: runs and launching, the report, the review list, the adversarial
suite and the leaderboard; and the model registry's lineage timeline, which shows each version's
latest evaluation. Views stay thin: services do every write."""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from feedback_site.annotation.models import Prompt, Split
from feedback_site.core.charts import interval_chart, lineage_chart
from feedback_site.core.config_forms import config_form_fields
from feedback_site.core.errors import Invalid, ServiceError
from feedback_site.evaluation import leaderboard as boards
from feedback_site.evaluation import services
from feedback_site.evaluation.models import AdversarialPrompt, EvaluationRun, EvaluationStatus, SampleSet
from feedback_site.projects.permissions import STAFF_ROLES, project_role
from feedback_site.projects.views import error_page, project_context, project_page
from feedback_site.registry import services as registry_services
from feedback_site.registry.models import ModelKind, ModelVersion
from rlhf.evaluation import EvaluationConfig


def _int_or_none(value):
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Invalid(f"{value!r} is not a version id", code="bad_version") from None


def _upload(request) -> bytes:
    upload = request.FILES.get("file")
    if upload is not None:
        return upload.read()
    text = request.POST.get("jsonl", "")
    if not text.strip():
        raise Invalid("choose a JSONL file or paste JSONL text", code="missing_file")
    return text.encode("utf-8")


class EvaluationLaunchForm(forms.Form):
    """The settings the launch card offers, read from `EvaluationConfig` (defaults, help, limits);
    the rest keep their defaults. Values left empty keep theirs too."""

    FIELDS = ("max_prompts", "max_new_tokens", "temperature", "seed")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in config_form_fields(EvaluationConfig, self.FIELDS).items():
            field.required = False
            self.fields[name] = field


@project_page(STAFF_ROLES)
@require_http_methods(["GET", "POST"])
def project_evaluation(request, project, role):
    error = None
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "launch":
                kind = request.POST.get("kind", "policy")
                if kind == "reward":
                    run = services.reward_evaluation_launch(
                        project=project, reward_model=_int_or_none(request.POST.get("reward_model")), actor=request.user
                    )
                else:
                    launch_form = EvaluationLaunchForm(request.POST)
                    if not launch_form.is_valid():
                        name, problems = next(iter(launch_form.errors.items()))
                        raise Invalid(f"{name}: {' '.join(problems)}", code="bad_config")
                    config = {name: value for name, value in launch_form.cleaned_data.items() if value is not None}
                    run = services.evaluation_launch(
                        project=project,
                        policy=_int_or_none(request.POST.get("policy")),
                        baseline=_int_or_none(request.POST.get("baseline")),
                        reward_model=_int_or_none(request.POST.get("reward_model")),
                        harmlessness_model=_int_or_none(request.POST.get("harmlessness_model")),
                        actor=request.user,
                        config=config,
                    )
                messages.success(request, f"Evaluation {run.pk} queued.")
                return redirect("evaluation-run", run.pk)
            if action == "eval_prompts":
                created = services.eval_prompts_import(project=project, actor=request.user, data=_upload(request))
                messages.success(request, f"{len(created)} evaluation prompts added (held out from training).")
                return redirect("project-evaluation", project.pk)
            if action == "heldout_pairs":
                count = services.heldout_pairs_import(project=project, actor=request.user, data=_upload(request))
                messages.success(request, f"{count} held-out pairs added.")
                return redirect("project-evaluation", project.pk)
            raise Invalid("unknown action", code="bad_action")
        except ValueError as exc:
            error = Invalid(str(exc))
        except ServiceError as exc:
            error = exc
    policies = ModelVersion.objects.filter(project=project, kind=ModelKind.POLICY).order_by("-number")
    rewards = ModelVersion.objects.filter(project=project, kind=ModelKind.REWARD).order_by("-number")
    context = project_context(
        project,
        role,
        error=error,
        policies=policies,
        rewards=rewards,
        runs=EvaluationRun.objects.filter(project=project).select_related("policy", "baseline", "reward_model").order_by("-id")[:100],
        eval_prompt_count=Prompt.objects.filter(project=project, split=Split.EVAL).exclude(metadata__has_key="heldout_pair").count(),
        heldout_pair_count=Prompt.objects.filter(project=project, split=Split.EVAL, metadata__has_key="heldout_pair").count(),
        review_count=services.review_queue(project).count(),
        launch_form=EvaluationLaunchForm(),
    )
    return render(request, "evaluation/home.html", context, status=error.status_code if error else 200)


@login_required
@require_GET
def run_detail(request, run_id: int):
    try:
        run = services.evaluation_get(run_id=run_id, actor=request.user)
    except ServiceError as error:
        return error_page(request, error)
    samples = list(run.samples.select_related("adversarial_prompt").order_by("id"))
    context = project_context(
        run.project,
        project_role(request.user, run.project),
        run=run,
        results=run.results or {},
        eval_samples=[s for s in samples if s.sample_set == SampleSet.EVAL],
        adversarial_samples=[s for s in samples if s.sample_set == SampleSet.ADVERSARIAL],
        results_json=json.dumps(run.results or {}, indent=2, sort_keys=True)[:20000],
    )
    return render(request, "evaluation/run.html", context)


@project_page(STAFF_ROLES)
@require_GET
def review_list(request, project, role):
    include = request.GET.get("all") == "1"
    return render(
        request,
        "evaluation/review.html",
        project_context(
            project,
            role,
            samples=list(services.review_queue(project, include_reviewed=include)[:500]),
            include_reviewed=include,
        ),
    )


@login_required
@require_POST
def sample_review(request, sample_id: int):
    try:
        sample = services.sample_review(
            sample_id=sample_id, actor=request.user, note=request.POST.get("note", ""), reviewed=request.POST.get("reviewed", "1") == "1"
        )
    except ServiceError as error:
        return error_page(request, error)
    messages.success(request, "Review recorded.")
    return redirect("evaluation-review", sample.run.project_id)


@project_page(STAFF_ROLES)
@require_http_methods(["GET", "POST"])
def adversarial_suite(request, project, role):
    error = None
    if request.method == "POST":
        try:
            action = request.POST.get("action")
            if action == "load_shipped":
                count = services.adversarial_import(project=project, actor=request.user)
                messages.success(request, f"Shipped suite loaded ({count} prompts).")
            elif action == "import":
                count = services.adversarial_import(
                    project=project, actor=request.user, data=_upload(request), replace=request.POST.get("replace") == "1"
                )
                messages.success(request, f"{count} adversarial prompts imported.")
            elif action == "edit":
                prompt = AdversarialPrompt.objects.filter(project=project, pk=_int_or_none(request.POST.get("prompt_id"))).first()
                if prompt is None:
                    raise Invalid("no such adversarial prompt", code="bad_prompt")
                patterns = [line.strip() for line in request.POST.get("flag_patterns", "").splitlines() if line.strip()]
                services.adversarial_update(
                    prompt=prompt,
                    actor=request.user,
                    text=request.POST.get("text", prompt.text),
                    system_prompt=request.POST.get("system_prompt", ""),
                    category=request.POST.get("category", prompt.category),
                    flag_patterns=patterns,
                    active=request.POST.get("active") == "1",
                )
                messages.success(request, f"{prompt.key} saved.")
            else:
                raise Invalid("unknown action", code="bad_action")
            return redirect("evaluation-adversarial", project.pk)
        except ServiceError as exc:
            error = exc
    return render(
        request,
        "evaluation/adversarial.html",
        project_context(
            project,
            role,
            error=error,
            prompts=AdversarialPrompt.objects.filter(project=project),
        ),
        status=error.status_code if error else 200,
    )


@project_page(STAFF_ROLES)
@require_GET
def project_leaderboard(request, project, role):
    data = boards.leaderboard(project)
    sections = [
        ("human", "Human comparisons", "Judgments by people on pairs whose two answers come from different policy versions."),
        ("automated", "Automated comparisons", "Per-prompt outcomes of evaluation runs, judged by reward models."),
        ("simulated", "Simulated annotators", "Judgments by simulated annotators, kept out of the human board."),
    ]
    return render(
        request,
        "evaluation/leaderboard.html",
        project_context(
            project,
            role,
            sections=[
                {"key": k, "title": t, "help": h, "board": data["boards"][k], "chart": _rating_chart(project, k, t, data["boards"][k])}
                for k, t, h in sections
            ],
            method=data["method"],
        ),
    )


def _rating_chart(project, key: str, title: str, board: dict) -> dict:
    """One board as a chart of core/charts.py: a dot at each version's rating, a bar over its
    interval, the current policy in green."""
    return interval_chart(
        f"chart-{key}",
        title=f"{title} ratings with 95% intervals",
        rows=[
            {
                "label": f"v{r['number']} {r['name'] if len(r['name']) <= 22 else r['name'][:21] + '…'}",
                "value": r["rating"],
                "low": r["low"],
                "high": r["high"],
                "highlight": r["version_id"] == project.current_policy_id,
            }
            for r in board["rows"]
        ],
        x_label="Rating (1000 + 400·log10 strength)",
        value_label="rating",
        interval_label="95% interval",
    )


# ------------------------------------------------------------------------------------------------
# The model registry's lineage timeline (versions with their latest evaluation)
# ------------------------------------------------------------------------------------------------

KEY_METRICS = ("loss", "train_loss", "eval_loss", "accuracy", "eval_accuracy", "reward", "mean_reward", "kl", "objective/kl")


def _key_metrics(metrics: dict) -> list[tuple[str, str]]:
    out = []
    for key in KEY_METRICS:
        value = (metrics or {}).get(key)
        if isinstance(value, (int, float)):
            out.append((key, f"{value:.4g}"))
    return out[:4]


def timeline_rows(project):
    """Versions in registration order, and the lineage chart of them (core/charts.py): one node
    per version at its registration index, in the policy or the reward-model lane, an edge from
    each parent."""
    versions = list(
        ModelVersion.objects.filter(project=project)
        .select_related("parent", "snapshot", "produced_by", "produced_by__demonstration_snapshot")
        .order_by("created_at", "id")
    )
    latest_eval = {}
    for run in EvaluationRun.objects.filter(project=project, status=EvaluationStatus.SUCCEEDED).order_by("id"):
        target = run.policy_id if run.kind == "policy" else run.reward_model_id
        latest_eval[target] = run
    rows, index_of = [], {}
    for index, version in enumerate(versions):
        index_of[version.pk] = index
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
                "metrics": _key_metrics(version.metrics),
                "evaluation": run,
                "evaluation_summary": summary,
                "is_current": project.current_policy_id == version.pk,
                "training_run": version.training_run,
            }
        )
    nodes = [
        {
            "x": index,
            "y": 1 if r["version"].kind == ModelKind.POLICY else 0,
            "label": f"{'P' if r['version'].kind == ModelKind.POLICY else 'R'}{r['version'].number}",
            "name": r["version"].name,
            "group": "current" if r["is_current"] else r["version"].kind,
        }
        for index, r in enumerate(rows)
    ]
    edges = [(index_of[r["version"].parent_id], index) for index, r in enumerate(rows) if r["version"].parent_id in index_of]
    chart = lineage_chart(
        "lineage",
        title="Lineage of model versions",
        nodes=nodes,
        edges=edges,
        lanes=["reward models", "policies"],
        groups=[
            {"key": "current", "label": "current policy", "color": "#1f7a3d", "radius": 9},
            {"key": ModelKind.POLICY, "label": "policies", "color": "#3b6fb6", "radius": 6},
            {"key": ModelKind.REWARD, "label": "reward models", "color": "#b66a3b", "radius": 6},
        ],
    )
    return rows, chart


@project_page(STAFF_ROLES)
@require_GET
def project_versions(request, project, role):
    rows, lineage = timeline_rows(project)
    return render(
        request,
        "registry/timeline.html",
        project_context(
            project,
            role,
            rows=rows,
            lineage=lineage,
            history=registry_services.pointer_history(project)[:50],
            can_roll_back=registry_services.can_roll_back(project),
        ),
    )
