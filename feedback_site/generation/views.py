"""Generation pages: launch "K responses per prompt from policy version V", and watch a run live.

The run page renders the run once and then polls the REST API (`api-generation-run`) every two
seconds from `generation/run_progress.js` until the run is finished; nothing reloads the page.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from feedback_site.annotation.models import Prompt, Split
from feedback_site.core.config_forms import config_form_fields
from feedback_site.core.errors import ServiceError
from feedback_site.generation import services
from feedback_site.generation.config import PairingConfig
from feedback_site.generation.models import TERMINAL_STATUSES, GenerationRun, Pairing
from feedback_site.projects.forms import ServiceErrorForm
from feedback_site.projects.permissions import STAFF_ROLES, project_role
from feedback_site.projects.views import error_page, form_status, project_context, project_page, run_service
from feedback_site.registry.models import ModelKind, ModelVersion
from rlhf.generation import SamplingConfig

PROMPT_SELECTIONS = [
    ("unanswered", "Not yet answered by this version"),
    ("all", "All training prompts"),
]


class PolicyChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, version) -> str:
        return f"v{version.number} · {version.name}"


class GenerationForm(ServiceErrorForm):
    """Types and single-field limits from the config dataclasses; cross-field rules come back from the service, under their field."""

    policy = PolicyChoiceField(queryset=ModelVersion.objects.none(), empty_label=None, label="Policy version")
    prompt_selection = forms.ChoiceField(choices=PROMPT_SELECTIONS, label="Prompts")
    pairing = forms.ChoiceField(choices=Pairing.choices, widget=forms.RadioSelect, initial=Pairing.ALL)

    service_error_fields = {"bad_policy": "policy", "bad_selection": "prompt_selection"}

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["policy"].queryset = ModelVersion.objects.filter(project=project, kind=ModelKind.POLICY).order_by("-number")
        self.fields["policy"].initial = project.current_policy_id
        self.fields["prompt_selection"].initial = "unanswered"
        # Sampling and pairing fields come from their dataclasses (defaults, limits, help).
        self.fields.update(config_form_fields(SamplingConfig))
        self.fields.update({name: field for name, field in config_form_fields(PairingConfig).items() if name != "pairing"})
        self.fields["pairs_per_prompt"].required = False

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("pairing") == Pairing.SAMPLE and cleaned.get("pairs_per_prompt") is None and "pairs_per_prompt" not in self.errors:
            self.add_error("pairs_per_prompt", "Say how many pairs to sample per prompt.")
        if cleaned.get("pairing") == Pairing.ALL:
            cleaned["pairs_per_prompt"] = None
        return cleaned


def _generate_context(project, role, form):
    train = Prompt.objects.filter(project=project, split=Split.TRAIN)
    unanswered = train.exclude(responses__model_version=project.current_policy_id).count() if project.current_policy_id else None
    return project_context(
        project,
        role,
        form=form,
        train_prompts=train.count(),
        unanswered_prompts=unanswered,
        runs=GenerationRun.objects.filter(project=project).select_related("policy", "created_by").order_by("-id")[:50],
    )


@project_page(STAFF_ROLES)
@require_http_methods(["GET", "POST"])
def project_generate(request, project, role):
    status = 200
    if request.method == "POST":
        form = GenerationForm(request.POST, project=project)
        if form.is_valid():
            values = dict(form.cleaned_data)
            # No transaction around this call: when the queue is down the service records the run
            # as failed with the reason, and that row must survive the error.
            run = run_service(form, lambda: services.generation_launch(project=project, actor=request.user, **values))
            if run is not None:
                messages.success(request, f"Generation run {run.pk} queued: {run.k} responses for each of {len(run.prompt_ids):,} prompts.")
                return redirect("generation-run", run.pk)
        status = form_status(form)
    else:
        form = GenerationForm(project=project)
    return render(request, "generation/generate.html", _generate_context(project, role, form), status=status)


def _run_page(request, run, *, error: ServiceError | None = None, status: int = 200):
    role = project_role(request.user, run.project)
    context = project_context(
        run.project,
        role,
        run=run,
        error=error,
        api_url=reverse("api-generation-run", args=[run.pk]),
        terminal_statuses=" ".join(sorted(TERMINAL_STATUSES)),
        percent=round(100 * run.progress_done / run.progress_total) if run.progress_total else 0,
    )
    return render(request, "generation/run_detail.html", context, status=status)


@login_required
@require_http_methods(["GET"])
def run_detail(request, run_id: int):
    try:
        run = services.generation_get(run_id=run_id, actor=request.user)
    except ServiceError as error:
        return error_page(request, error)
    return _run_page(request, run)


@login_required
@require_POST
def run_cancel(request, run_id: int):
    try:
        run = services.generation_get(run_id=run_id, actor=request.user)
    except ServiceError as error:
        return error_page(request, error)
    try:
        run = services.generation_cancel(run=run, actor=request.user)
    except ServiceError as error:
        run.refresh_from_db()
        return _run_page(request, run, error=error, status=error.status_code)
    if run.is_terminal:
        messages.success(request, "Run cancelled before it started.")
    else:
        messages.info(request, "Cancel requested; the worker stops after the current batch.")
    return redirect("generation-run", run.pk)
