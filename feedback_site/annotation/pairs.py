"""The pair-comparison task kind: two responses shown side by side in a random order, judged
left / right / tie / both bad, with an optional strength, per-criterion votes and a rationale.

What the queue needs to know about pairs (`PAIR`) and the rules of a judgment that need no
database (both queue implementations use them): the display choice mapped back to the stored
responses (`to_preference`) and the checks of a judgment's fields (`validate_judgment`).
"""

from __future__ import annotations

from feedback_site.annotation.models import Assignment, DisplayChoice, Judgment, Pair, Preference, Strength
from feedback_site.annotation.queue import TaskKind, _swap_random, register
from feedback_site.core.errors import Invalid

PAIR = register(
    TaskKind(
        name="pair",
        task_model=Pair,
        lease_model=Assignment,
        result_model=Judgment,
        task_field="pair",
        count_field="judgment_count",
        noun="pair",
        result_noun="judgments",
        has_gold=True,
        agreement_field="preferred",
        # Which response is shown on the left, per assignment (position bias averages out).
        new_lease=lambda: {"swapped": _swap_random.random() < 0.5},
    )
)

_CHOICE_TO_PREFERENCE = {
    (DisplayChoice.LEFT, False): Preference.A,
    (DisplayChoice.RIGHT, False): Preference.B,
    (DisplayChoice.LEFT, True): Preference.B,
    (DisplayChoice.RIGHT, True): Preference.A,
}


def to_preference(choice: str, swapped: bool) -> str:
    if choice in (DisplayChoice.TIE, DisplayChoice.BOTH_BAD):
        return str(choice)
    return str(_CHOICE_TO_PREFERENCE[(DisplayChoice(choice), swapped)])


def validate_judgment(project_criteria, choice: str, strength: str, criteria: dict, rationale: str, time_spent_ms) -> None:
    if choice not in DisplayChoice.values:
        raise Invalid(f"choice must be one of {', '.join(DisplayChoice.values)}; got {choice!r}", code="bad_choice")
    if strength and strength not in Strength.values:
        raise Invalid(f"strength must be one of {', '.join(Strength.values)} or empty; got {strength!r}", code="bad_strength")
    if strength and choice not in (DisplayChoice.LEFT, DisplayChoice.RIGHT):
        raise Invalid("strength only applies when one side is chosen", code="bad_strength")
    if not isinstance(criteria, dict):
        raise Invalid("criteria must be an object mapping criterion name to left/right/tie", code="bad_criteria")
    allowed = set(project_criteria or [])
    for name, vote in criteria.items():
        if name not in allowed:
            raise Invalid(f"unknown criterion {name!r}; this project has {sorted(allowed) or 'none'}", code="bad_criteria")
        if vote not in ("left", "right", "tie"):
            raise Invalid(f"criterion {name!r} must be left, right or tie; got {vote!r}", code="bad_criteria")
    if not isinstance(rationale, str) or len(rationale) > 10_000:
        raise Invalid("rationale must be text of at most 10,000 characters", code="bad_rationale")
    if time_spent_ms is not None and (
        not isinstance(time_spent_ms, int) or isinstance(time_spent_ms, bool) or not 0 <= time_spent_ms <= 86_400_000
    ):
        raise Invalid("time_spent_ms must be an integer between 0 and 86400000", code="bad_time")


def fields_valid(choice, strength, criteria, rationale, time_spent_ms) -> bool:
    """The checks that do not depend on the project (criterion names are checked by the caller)."""
    try:
        validate_judgment(list(criteria) if isinstance(criteria, dict) else [], choice, strength, criteria, rationale, time_spent_ms)
    except Invalid:
        return False
    return True
