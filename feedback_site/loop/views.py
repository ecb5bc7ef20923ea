"""Staff pages of the closed loop: simulated annotators, blind A/B campaigns (results), rounds.
Views stay thin: services do every write."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from feedback_site.core.errors import Invalid, ServiceError
from feedback_site.loop import services
from feedback_site.loop.models import STAGE_ORDER, Campaign, Round, SimulatedAnnotator, SimulatedRule, Stage
from feedback_site.projects.permissions import STAFF_ROLES, project_role
from feedback_site.projects.views import error_page, project_context, project_page
from feedback_site.registry.models import ModelKind, ModelVersion


def _int(value, name: str, default=None):
    if value in (None, ""):
        if default is not None:
            return default
        raise Invalid(f"{name} is required", code=f"bad_{name}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Invalid(f"{name} must be an integer, got {value!r}", code=f"bad_{name}") from None


def _float(value, name: str, default: float) -> float:
    if value in (None, ""):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise Invalid(f"{name} must be a number, got {value!r}", code=f"bad_{name}") from None


@project_page(STAFF_ROLES)
@require_http_methods(["GET", "POST"])
def project_loop(request, project, role):
    """One page for the loop: rounds, simulated annotators and campaigns of a project."""
    error = None
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "simulated":
                reward_model = request.POST.get("reward_model") or None
                annotator = services.simulated_annotator_create(
                    project=project,
                    actor=request.user,
                    name=request.POST.get("name", ""),
                    rule=request.POST.get("rule", ""),
                    noise=_float(request.POST.get("noise"), "noise", 0.1),
                    seed=_int(request.POST.get("seed"), "seed", 0),
                    keyword=request.POST.get("keyword", ""),
                    tie_policy=request.POST.get("tie_policy", "random"),
                    reward_model=_int(reward_model, "reward_model") if reward_model else None,
                )
                messages.success(request, f"Simulated annotator {annotator.name} created.")
            elif action == "simulate":
                annotator = SimulatedAnnotator.objects.filter(pk=_int(request.POST.get("annotator"), "annotator"), project=project).first()
                if annotator is None:
                    raise Invalid("no such simulated annotator in this project", code="bad_annotator")
                run = services.simulation_launch(annotator=annotator, target=_int(request.POST.get("target"), "target"), actor=request.user)
                messages.success(request, f"Simulation {run.pk} queued: {annotator.name} judges up to {run.target} pairs.")
            elif action == "campaign":
                campaign = services.campaign_launch(
                    project=project,
                    actor=request.user,
                    version_x=_int(request.POST.get("version_x"), "version_x"),
                    version_y=_int(request.POST.get("version_y"), "version_y"),
                    name=request.POST.get("name", ""),
                    max_prompts=_int(request.POST.get("max_prompts"), "max_prompts", 100),
                    overlap=_int(request.POST.get("overlap"), "overlap", 1),
                    max_new_tokens=_int(request.POST.get("max_new_tokens"), "max_new_tokens", 128),
                )
                return redirect("loop-campaign", campaign.pk)
            elif action == "round":
                try:
                    config = json.loads(request.POST.get("config") or "{}")
                except json.JSONDecodeError as exc:
                    raise Invalid(f"config is not valid JSON: {exc.msg}", code="bad_config") from None
                if request.POST.get("method"):
                    config.setdefault("method", request.POST["method"])
                if request.POST.get("promotion"):
                    config.setdefault("promotion", request.POST["promotion"])
                sim = request.POST.get("simulated_annotator") or None
                rnd = services.round_start(
                    project=project,
                    actor=request.user,
                    simulated_annotator=_int(sim, "simulated_annotator") if sim else None,
                    config=config,
                )
                return redirect("loop-round", rnd.pk)
            else:
                raise Invalid("unknown action", code="bad_action")
            return redirect("project-loop", project.pk)
        except ServiceError as exc:
            error, status = exc, exc.status_code
    context = project_context(
        project,
        role,
        tab="loop",
        title="Closed loop",
        error=error,
        rounds=Round.objects.filter(project=project).select_related("policy", "output_version").order_by("-number")[:50],
        annotators=SimulatedAnnotator.objects.filter(project=project).prefetch_related("runs"),
        campaigns=Campaign.objects.filter(project=project).select_related("version_x", "version_y")[:50],
        policies=ModelVersion.objects.filter(project=project, kind=ModelKind.POLICY).order_by("-number"),
        reward_models=ModelVersion.objects.filter(project=project, kind=ModelKind.REWARD).order_by("-number"),
        rules=SimulatedRule.choices,
    )
    return render(request, "loop/project.html", context, status=status)


def _staff_object(request, loader):
    try:
        obj = loader()
        return obj, project_role(request.user, obj.project_id), None
    except ServiceError as error:
        return None, None, error_page(request, error)


@login_required
def campaign_detail(request, campaign_id: int):
    campaign, role, failure = _staff_object(request, lambda: services.campaign_get(campaign_id=campaign_id, actor=request.user))
    if failure:
        return failure
    include_simulated = request.GET.get("simulated") == "1"
    results = services.campaign_results(campaign, include_simulated=include_simulated)
    return render(
        request,
        "loop/campaign.html",
        project_context(
            campaign.project,
            role,
            tab="loop",
            title=f"Campaign: {campaign.name}",
            campaign=campaign,
            results=results,
            include_simulated=include_simulated,
        ),
    )


STAGE_LINKS = {
    Stage.GENERATE: ("generation_run", "generation-run"),
    Stage.SNAPSHOT: ("snapshot", None),
    Stage.TRAIN: ("training_run", "training-run"),
    Stage.EVALUATE: ("evaluation_run", "evaluation-run"),
}


def _stage_rows(rnd: Round) -> list[dict]:
    from django.urls import reverse

    current = STAGE_ORDER.index(rnd.stage) if rnd.stage in STAGE_ORDER else None
    failed_at = None
    if rnd.stage == Stage.FAILED:
        reached = [h["stage"] for h in rnd.history if h["stage"] in STAGE_ORDER]
        failed_at = STAGE_ORDER.index(reached[-1]) if reached else 0
    rows = []
    for index, stage in enumerate(STAGE_ORDER[:-1]):
        if failed_at is not None:
            state = "done" if index < failed_at else ("failed" if index == failed_at else "pending")
        else:
            state = "done" if index < current else ("active" if index == current else "pending")
        links = []
        if stage == Stage.GENERATE and rnd.generation_run_id:
            links.append((f"generation run #{rnd.generation_run_id}", reverse("generation-run", args=[rnd.generation_run_id])))
        if stage == Stage.ANNOTATE:
            if rnd.simulation_run_id:
                links.append(
                    (
                        f"simulation #{rnd.simulation_run_id} ({rnd.simulation_run.done}/{rnd.simulation_run.target}, {rnd.simulation_run.status})",
                        None,
                    )
                )
            links.append(("annotator page", reverse("annotate", args=[rnd.project_id])))
        if stage == Stage.SNAPSHOT and rnd.snapshot_id:
            links.append((f"snapshot #{rnd.snapshot_id}", reverse("project-snapshots", args=[rnd.project_id])))
        if stage == Stage.TRAIN:
            if rnd.reward_run_id:
                links.append((f"reward-model training #{rnd.reward_run_id}", reverse("training-run", args=[rnd.reward_run_id])))
            if rnd.training_run_id:
                links.append(
                    (f"{rnd.config['method']} training #{rnd.training_run_id}", reverse("training-run", args=[rnd.training_run_id]))
                )
        if stage == Stage.EVALUATE and rnd.evaluation_run_id:
            links.append((f"evaluation #{rnd.evaluation_run_id}", reverse("evaluation-run", args=[rnd.evaluation_run_id])))
        if stage == Stage.PROMOTE and rnd.output_version_id:
            links.append((f"{rnd.output_version.label}", reverse("project-versions", args=[rnd.project_id])))
        rows.append({"stage": stage, "label": Stage(stage).label, "state": state, "links": links})
    return rows


@login_required
@require_http_methods(["GET", "POST"])
def round_detail(request, round_id: int):
    rnd, role, failure = _staff_object(request, lambda: services.round_get(round_id=round_id, actor=request.user))
    if failure:
        return failure
    error = None
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "advance":
                services.round_advance(round_id=rnd.pk)
            elif action in ("promote", "keep"):
                services.round_decide(round=rnd, actor=request.user, promote=action == "promote", reason=request.POST.get("reason", ""))
            else:
                raise Invalid("unknown action", code="bad_action")
            return redirect("loop-round", rnd.pk)
        except ServiceError as exc:
            error = exc
        rnd = services.round_get(round_id=round_id, actor=request.user)
    rate = (rnd.evaluation_run.win_rate if rnd.evaluation_run_id else None) or None
    return render(
        request,
        "loop/round.html",
        project_context(
            rnd.project,
            role,
            tab="loop",
            title=f"Round {rnd.number}",
            round=rnd,
            stages=_stage_rows(rnd),
            win_rate=rate,
            error=error,
            waiting_for_decision=rnd.stage == Stage.PROMOTE and rnd.promoted is None and rnd.output_version_id is not None,
            config_json=json.dumps(rnd.config, indent=2, sort_keys=True),
        ),
        status=error.status_code if error else 200,
    )
