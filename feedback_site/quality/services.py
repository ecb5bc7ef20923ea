"""Writes of the quality app: adjudication, and queueing reward-model scoring of pairs."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from feedback_site.annotation.models import Pair, Preference
from feedback_site.core.audit import audit_record
from feedback_site.core.errors import Invalid, NotFound
from feedback_site.projects.permissions import STAFF_ROLES, require_role
from feedback_site.quality.models import Adjudication
from workers.task_names import QUALITY_SCORE_PAIRS

MAX_NOTE = 2000


def adjudicate(*, pair_id: int, actor, label: str, note: str = "") -> tuple[Adjudication, bool]:
    """Sets a pair's final label (admins and ML staff). Re-adjudicating updates the row; the audit
    log keeps every decision with the label it replaced. Returns (adjudication, created)."""
    pair = Pair.objects.filter(pk=pair_id).select_related("project").first()
    if pair is None:
        raise NotFound("No such pair.")
    require_role(actor, pair.project_id, STAFF_ROLES)
    if label not in Preference.values:
        raise Invalid(f"label must be one of {', '.join(Preference.values)}", code="bad_label")
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise Invalid(f"note must be at most {MAX_NOTE} characters", code="bad_note")
    with transaction.atomic():
        Pair.objects.select_for_update().filter(pk=pair.pk).first()
        existing = Adjudication.objects.filter(pair_id=pair.pk).first()
        previous = None if existing is None else {"label": existing.label, "note": existing.note}
        now = timezone.now()
        if existing is None:
            adjudication = Adjudication.objects.create(pair_id=pair.pk, label=label, note=note, decided_by=actor, decided_at=now)
        else:
            existing.label, existing.note, existing.decided_by, existing.decided_at = label, note, actor, now
            existing.save(update_fields=["label", "note", "decided_by", "decided_at"])
            adjudication = existing
        audit_record(
            actor=actor,
            action="judgment.adjudicate",
            target=adjudication,
            project=pair.project,
            details={"pair_id": pair.pk, "label": label, "note": note, "previous": previous},
        )
    return adjudication, existing is None


# ------------------------------------------------------------------------------------------------
# Uncertainty-first queue (issue 5, item 9)
# ------------------------------------------------------------------------------------------------


def _reward_version(project, reward_model_id: int):
    from feedback_site.registry.models import ModelKind, ModelVersion

    version = ModelVersion.objects.filter(pk=reward_model_id, project=project, kind=ModelKind.REWARD).first()
    if version is None:
        raise Invalid(f"reward model {reward_model_id} is not a reward-model version of this project", code="bad_reward_model")
    return version


def uncertainty_request(*, project, actor, reward_model_id: int) -> str:
    """Queue scoring of the project's incomplete pairs with a reward-model version (staff, and
    only for projects with uncertainty_first on). Returns the Celery task id."""
    from feedback_site.core.queue import enqueue

    require_role(actor, project, STAFF_ROLES)
    if not project.uncertainty_first:
        raise Invalid("turn on 'uncertainty first' in the project settings before scoring pairs", code="uncertainty_off")
    version = _reward_version(project, reward_model_id)
    task_id = enqueue(QUALITY_SCORE_PAIRS, project.pk, version.pk)
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="queue.score_pairs",
            target=version,
            project=project,
            details={"reward_model": version.pk, "task_id": task_id},
        )
    return task_id


def pairs_to_score(project_id: int) -> list[dict]:
    """Incomplete, queued, non-gold pairs with the texts the reward model needs."""
    pairs = (
        Pair.objects.filter(project_id=project_id, is_complete=False, overlap__gt=0, is_gold=False)
        .select_related("prompt", "response_a", "response_b")
        .order_by("id")
    )
    return [{"pair_id": p.pk, "messages": p.prompt.messages(), "a": p.response_a.text, "b": p.response_b.text} for p in pairs]


def uncertainty_priorities(scores: dict[int, tuple[float, float]]) -> dict[int, int]:
    """Rank pairs by |score_a - score_b| (closest first): priority N for the closest of N pairs
    down to 1 for the farthest; ties in the gap keep pair-id order."""
    ordered = sorted(scores.items(), key=lambda item: (abs(item[1][0] - item[1][1]), item[0]))
    n = len(ordered)
    return {pair_id: n - rank for rank, (pair_id, _) in enumerate(ordered)}


def uncertainty_apply(*, project_id: int, reward_model_id: int, scores: dict[int, tuple[float, float]]) -> int:
    """Write the priorities from the scores (one UPDATE per 1,000 pairs, in one transaction).
    Pairs that completed in the meantime are left alone. Idempotent: the same scores give the
    same priorities. Returns the number of pairs updated."""
    priorities = uncertainty_priorities(scores)
    items = list(priorities.items())
    updated = 0
    with transaction.atomic():
        for start in range(0, len(items), 1000):
            chunk = items[start : start + 1000]
            pairs = list(Pair.objects.filter(pk__in=[pid for pid, _ in chunk], project_id=project_id, is_complete=False).only("id"))
            for pair in pairs:
                pair.priority = priorities[pair.pk]
            updated += Pair.objects.bulk_update(pairs, ["priority"])
    return updated
