"""Every write of the safety app: the policy, screening new responses, releasing or rejecting them.

Screening happens where responses are created (generation's completion transaction; the
playground's worker), so a response is never visible before its screen exists. The classifier
score, when the project has one, is computed torch-side by the worker beforehand and passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from feedback_site.annotation import services as annotation_services
from feedback_site.annotation.models import Pair, Response
from feedback_site.core.errors import Conflict, Invalid, NotFound
from feedback_site.projects.models import Project, Role
from feedback_site.projects.permissions import STAFF_ROLES, require_role
from feedback_site.registry.models import ModelKind, ModelVersion
from feedback_site.safety.models import HeldPair, ReviewStatus, SafetyAction, SafetyPolicy, SafetyScreen, Verdict
from feedback_site.safety.selectors import warning_text
from rlhf.safety import DEFAULT_RULES, Rule, compile_rules, match_rule

POLICY_ADMIN_ROLES = frozenset({Role.ADMIN, Role.ML_STAFF})


def policy_for(project: Project | int) -> SafetyPolicy:
    """The project's policy; a project that never set one gets the default (enabled, review,
    default rules, no classifier) without a row being written."""
    project_id = project if isinstance(project, int) else project.pk
    policy = SafetyPolicy.objects.select_related("classifier").filter(project_id=project_id).first()
    return policy or SafetyPolicy(project_id=project_id)


def effective_rules(policy: SafetyPolicy) -> list[Rule]:
    rules = list(DEFAULT_RULES) if policy.use_default_rules else []
    return compile_rules(rules + list(policy.rules or []))


def policy_update(*, project: Project, actor, **fields) -> SafetyPolicy:
    """Change a project's policy (admins and ML staff). Unknown fields and bad values are 400s."""
    require_role(actor, project, POLICY_ADMIN_ROLES)
    allowed = {"enabled", "action", "use_default_rules", "rules", "classifier_id", "threshold"}
    unknown = set(fields) - allowed
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(sorted(unknown))}", code="bad_field")
    with transaction.atomic():
        policy, _ = SafetyPolicy.objects.select_for_update().get_or_create(project=project)
        if "enabled" in fields:
            if not isinstance(fields["enabled"], bool):
                raise Invalid("enabled must be true or false", code="bad_enabled")
            policy.enabled = fields["enabled"]
        if "use_default_rules" in fields:
            if not isinstance(fields["use_default_rules"], bool):
                raise Invalid("use_default_rules must be true or false", code="bad_use_default_rules")
            policy.use_default_rules = fields["use_default_rules"]
        if "action" in fields:
            if fields["action"] not in SafetyAction.values:
                raise Invalid(f"action must be one of {', '.join(SafetyAction.values)}", code="bad_action")
            policy.action = fields["action"]
        if "rules" in fields:
            rules = fields["rules"]
            if not isinstance(rules, list):
                raise Invalid('rules must be a list of {"name": ..., "pattern": ...}', code="bad_rules")
            try:
                compile_rules(rules)
            except ValueError as error:
                raise Invalid(str(error), code="bad_rules") from None
            policy.rules = [{"name": r.get("name") or f"rule-{i + 1}", "pattern": r["pattern"]} for i, r in enumerate(rules)]
        if "threshold" in fields:
            value = fields["threshold"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) > 1e6:
                raise Invalid("threshold must be a finite number", code="bad_threshold")
            policy.threshold = float(value)
        if "classifier_id" in fields:
            classifier_id = fields["classifier_id"]
            if classifier_id is None:
                policy.classifier = None
            else:
                version = (
                    ModelVersion.objects.filter(pk=classifier_id, project=project, kind=ModelKind.REWARD).first()
                    if isinstance(classifier_id, int) and not isinstance(classifier_id, bool)
                    else None
                )
                if version is None:
                    raise Invalid(f"classifier {classifier_id!r} is not a reward-model version of this project", code="bad_classifier")
                policy.classifier = version
        policy.save()
        return policy


def classifier_target(project_id: int) -> dict | None:
    """What the worker needs to score responses: None when the project uses no classifier."""
    policy = policy_for(project_id)
    if not policy.enabled or policy.classifier_id is None:
        return None
    return {"artifact_uri": policy.classifier.artifact_uri, "threshold": policy.threshold, "version_id": policy.classifier_id}


def decide(policy: SafetyPolicy, text: str, score: float | None, rules: list[Rule] | None = None) -> dict:
    """The screen's decision for one text: verdict, action, matched rule and score."""
    if not policy.enabled:
        return {"verdict": Verdict.CLEAN, "action": "", "matched_rule": "", "score": score}
    rules = effective_rules(policy) if rules is None else rules
    matched = match_rule(text, rules) or ""
    below = score is not None and policy.classifier_id is not None and score < policy.threshold
    if not matched and below:
        matched = "classifier"
    flagged = bool(matched)
    return {
        "verdict": Verdict.FLAGGED if flagged else Verdict.CLEAN,
        "action": policy.action if flagged else "",
        "matched_rule": matched,
        "score": score,
    }


def screen_responses(
    *,
    project: Project | int,
    responses: Iterable[Response],
    scores: Mapping[int, float] | None = None,
    pairs: Iterable[Pair] | None = None,
) -> list[SafetyScreen]:
    """Screen newly created responses and hold the pairs that contain a hidden one.

    Call inside the transaction that creates the responses (and pairs), so nobody can be served a
    pair before it is screened. `scores` maps response id -> classifier score. Idempotent: a
    response screened already keeps its screen.
    """
    project_id = project if isinstance(project, int) else project.pk
    policy = policy_for(project_id)
    rules = effective_rules(policy)
    responses = list(responses)
    already = set(SafetyScreen.objects.filter(response__in=[r.pk for r in responses]).values_list("response_id", flat=True))
    screens = []
    for response in responses:
        if response.pk in already:
            continue
        decision = decide(policy, response.text, (scores or {}).get(response.pk), rules)
        screens.append(
            SafetyScreen(
                response=response,
                project_id=project_id,
                verdict=decision["verdict"],
                action=decision["action"],
                matched_rule=decision["matched_rule"],
                score=decision["score"],
                threshold=policy.threshold if policy.classifier_id else None,
                classifier_id=policy.classifier_id,
                review_status=ReviewStatus.PENDING if decision["action"] == SafetyAction.REVIEW else "",
            )
        )
    SafetyScreen.objects.bulk_create(screens)
    # The queue reads only annotation's tables: the warning goes onto the response itself.
    warned = {
        s.response_id: warning_text(s.matched_rule) for s in screens if s.verdict == Verdict.FLAGGED and s.action == SafetyAction.WARN
    }
    annotation_services.responses_warn(warned)
    hidden = {s.response_id for s in screens if s.hidden}
    if hidden:
        pair_list = list(pairs) if pairs is not None else list(Pair.objects.filter(Q(response_a__in=hidden) | Q(response_b__in=hidden)))
        _hold_pairs([p for p in pair_list if p.response_a_id in hidden or p.response_b_id in hidden])
    return screens


def _hold_pairs(pairs: list[Pair]) -> None:
    held_already = set(HeldPair.objects.filter(pair__in=[p.pk for p in pairs]).values_list("pair_id", flat=True))
    new = [p for p in pairs if p.pk not in held_already]
    HeldPair.objects.bulk_create([HeldPair(pair=p, original_overlap=p.overlap) for p in new])
    annotation_services.pairs_withdraw(p.pk for p in new)


def _release_pairs(response_id: int) -> int:
    """Restore the pairs of a released response whose other response is not held either."""
    released = 0
    holds = HeldPair.objects.select_related("pair").filter(Q(pair__response_a_id=response_id) | Q(pair__response_b_id=response_id))
    for hold in holds:
        pair = hold.pair
        other = pair.response_b_id if pair.response_a_id == response_id else pair.response_a_id
        other_screen = SafetyScreen.objects.filter(response_id=other).first()
        if other_screen is not None and other_screen.hidden:
            continue
        annotation_services.pair_requeue(pair, hold.original_overlap)
        hold.delete()
        released += 1
    return released


def _screen_for_staff(screen_id: int, actor) -> SafetyScreen:
    screen = SafetyScreen.objects.select_for_update().filter(pk=screen_id).first()
    if screen is None:
        raise NotFound("No such safety screen.")
    require_role(actor, screen.project_id, STAFF_ROLES)
    return screen


def review_release(*, screen_id: int, actor) -> SafetyScreen:
    """Staff decide a flagged response may be shown: its pairs go back into the queue."""
    with transaction.atomic():
        screen = _screen_for_staff(screen_id, actor)
        if screen.verdict != Verdict.FLAGGED:
            raise Conflict("This response was not flagged.", code="not_flagged")
        if screen.review_status == ReviewStatus.RELEASED:
            return screen  # idempotent
        screen.review_status = ReviewStatus.RELEASED
        screen.reviewed_by, screen.reviewed_at = actor, timezone.now()
        screen.save(update_fields=["review_status", "reviewed_by", "reviewed_at"])
        _release_pairs(screen.response_id)
        return screen


def review_reject(*, screen_id: int, actor) -> SafetyScreen:
    """Staff confirm a flagged response must not be shown: its pairs stay out of the queue."""
    with transaction.atomic():
        screen = _screen_for_staff(screen_id, actor)
        if screen.verdict != Verdict.FLAGGED:
            raise Conflict("This response was not flagged.", code="not_flagged")
        if screen.review_status == ReviewStatus.REJECTED:
            return screen
        if screen.review_status == ReviewStatus.RELEASED:
            raise Conflict("This response was already released; its pairs may have been judged.", code="released")
        screen.review_status = ReviewStatus.REJECTED
        screen.reviewed_by, screen.reviewed_at = actor, timezone.now()
        screen.save(update_fields=["review_status", "reviewed_by", "reviewed_at"])
        pairs = list(Pair.objects.filter(Q(response_a_id=screen.response_id) | Q(response_b_id=screen.response_id)))
        _hold_pairs(pairs)
        return screen


def flagged_list(*, project: Project, actor, status: str | None = None):
    """Flagged responses of a project for staff, newest first; `status`: pending, released,
    rejected, hidden (action hide, not reviewed), warn, or None for all flagged."""
    require_role(actor, project, STAFF_ROLES)
    screens = SafetyScreen.objects.filter(project=project, verdict=Verdict.FLAGGED).select_related("response", "response__prompt")
    if status in (ReviewStatus.PENDING, ReviewStatus.RELEASED, ReviewStatus.REJECTED):
        screens = screens.filter(review_status=status)
    elif status == "hidden":
        screens = screens.filter(action=SafetyAction.HIDE, review_status="")
    elif status == "warn":
        screens = screens.filter(action=SafetyAction.WARN)
    elif status not in (None, "", "all"):
        raise Invalid("status must be one of pending, released, rejected, hidden, warn, all", code="bad_status")
    return screens.order_by("-id")


def screen_text(*, project_id: int, text: str, score: float | None = None) -> dict:
    """The decision for any other generated text a person will see (evaluation samples, ...):
    `{"verdict", "action", "matched_rule", "score"}`. Store it with the text and, when
    `action` is "hide" or "review", do not show the text unless staff ask for it. The score is
    the project's classifier score, computed torch-side with `workers.safety_tasks.classifier_scores`."""
    return decide(policy_for(project_id), text, score)
