"""Read-only helpers that show the screen's outcome.

`safety_flags(response_ids)` returns, per response id that must be shown blurred behind a warning,
`{"action": "warn", "reason": ...}`. Responses that are hidden or pending review never reach
annotators (their pairs are out of the queue), so only "warn" appears. The annotator payload does
not call this (annotation sits below safety): the screen copies the reason, `warning_text`, onto
the response when it screens it (`annotation.services.responses_warn`), and the queue reads that.
"""

from __future__ import annotations

from collections.abc import Iterable

from feedback_site.safety.models import SafetyAction, SafetyScreen, Verdict


def safety_flags(response_ids: Iterable[int]) -> dict[int, dict]:
    rows = SafetyScreen.objects.filter(response_id__in=list(response_ids), verdict=Verdict.FLAGGED, action=SafetyAction.WARN).values(
        "response_id", "matched_rule"
    )
    return {row["response_id"]: {"action": "warn", "reason": warning_text(row["matched_rule"])} for row in rows}


def safety_flag(response_id: int) -> dict | None:
    """The flag of one response for the annotator page, or None (show normally)."""
    return safety_flags([response_id]).get(response_id)


def warning_text(rule: str) -> str:
    """What annotators read above a response the screen flagged with `rule` (action "warn")."""
    if rule == "classifier":
        return "The safety classifier scored this response as possibly harmful."
    return f"This response matched the safety rule “{rule}”." if rule else "This response was flagged."


def screens_for(response_ids: Iterable[int]) -> dict[int, SafetyScreen]:
    """Full screens for staff pages (decision, rule, score)."""
    return {s.response_id: s for s in SafetyScreen.objects.filter(response_id__in=list(response_ids))}
