"""Read-only helpers other apps use to show the screen's outcome.

For the annotator payload: `safety_flags(response_ids)` returns, per response id that must be
shown blurred behind a warning, `{"action": "warn", "reason": ...}`. Responses that are hidden or
pending review never reach annotators (their pairs are out of the queue), so only "warn" appears.
"""

from __future__ import annotations

from collections.abc import Iterable

from feedback_site.safety.models import SafetyAction, SafetyScreen, Verdict


def safety_flags(response_ids: Iterable[int]) -> dict[int, dict]:
    rows = SafetyScreen.objects.filter(response_id__in=list(response_ids), verdict=Verdict.FLAGGED, action=SafetyAction.WARN).values(
        "response_id", "matched_rule"
    )
    return {row["response_id"]: {"action": "warn", "reason": _reason(row["matched_rule"])} for row in rows}


def warn_flag(matched_rule: str | None) -> dict | None:
    """The annotator-payload flag from a joined screen row's matched_rule (None: not flagged/warn)."""
    if matched_rule is None:
        return None
    return {"action": "warn", "reason": _reason(matched_rule)}


def safety_flag(response_id: int) -> dict | None:
    """The flag of one response for the annotator page, or None (show normally)."""
    return safety_flags([response_id]).get(response_id)


def _reason(rule: str) -> str:
    if rule == "classifier":
        return "The safety classifier scored this response as possibly harmful."
    return f"This response matched the safety rule “{rule}”." if rule else "This response was flagged."


def screens_for(response_ids: Iterable[int]) -> dict[int, SafetyScreen]:
    """Full screens for staff pages (decision, rule, score)."""
    return {s.response_id: s for s in SafetyScreen.objects.filter(response_id__in=list(response_ids))}
