"""Staff page of the safety screen: the policy, and the flagged responses to release or reject."""

from __future__ import annotations

import json

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from feedback_site.core.errors import Invalid, ServiceError
from feedback_site.projects.permissions import STAFF_ROLES
from feedback_site.projects.views import project_context, project_page
from feedback_site.registry.models import ModelKind, ModelVersion
from feedback_site.safety import services
from feedback_site.safety.models import SafetyAction
from rlhf.safety import DEFAULT_RULES


@project_page(STAFF_ROLES)
@require_http_methods(["GET", "POST"])
def safety_page(request, project, role):
    status_code = 200
    if request.method == "POST":
        try:
            try:
                rules = json.loads(request.POST.get("rules") or "[]")
            except json.JSONDecodeError as error:
                raise Invalid(f"rules: not valid JSON ({error.msg})", code="bad_rules") from None
            classifier = request.POST.get("classifier_id") or None
            threshold = request.POST.get("threshold") or "0"
            try:
                threshold_value = float(threshold)
            except ValueError:
                raise Invalid("threshold must be a number", code="bad_threshold") from None
            services.policy_update(
                project=project,
                actor=request.user,
                enabled=request.POST.get("enabled") == "on",
                use_default_rules=request.POST.get("use_default_rules") == "on",
                action=request.POST.get("action", ""),
                rules=rules,
                classifier_id=int(classifier) if classifier and classifier.isdigit() else (None if not classifier else -1),
                threshold=threshold_value,
            )
            messages.success(request, "Safety policy saved.")
            return redirect("project-safety", project.pk)
        except ServiceError as error:
            messages.error(request, error.message)
            status_code = error.status_code
    status = request.GET.get("status", "pending")
    try:
        screens = list(services.flagged_list(project=project, actor=request.user, status=status)[:200])
    except ServiceError:
        status, screens = "pending", list(services.flagged_list(project=project, actor=request.user, status="pending")[:200])
    policy = services.policy_for(project)
    context = project_context(
        project,
        role,
        policy=policy,
        rules_json=json.dumps(policy.rules or [], indent=1),
        default_rules=DEFAULT_RULES,
        actions=SafetyAction.choices,
        classifiers=ModelVersion.objects.filter(project=project, kind=ModelKind.REWARD).order_by("-number"),
        screens=screens,
        status=status,
        statuses=["pending", "hidden", "warn", "released", "rejected", "all"],
    )
    return render(request, "safety/safety.html", context, status=status_code)


@project_page(STAFF_ROLES)
@require_POST
def screen_decide(request, project, role, screen_id: int, decision: str):
    try:
        if decision == "release":
            services.review_release(screen_id=screen_id, actor=request.user)
            messages.success(request, "Released: its pairs are back in the queue.")
        elif decision == "reject":
            services.review_reject(screen_id=screen_id, actor=request.user)
            messages.success(request, "Rejected: it stays hidden from annotators.")
        else:
            raise Invalid("decision must be release or reject")
    except ServiceError as error:
        messages.error(request, error.message)
    return redirect(f"{request.path.split('/safety/')[0]}/safety/?status={request.POST.get('status', 'pending')}")
