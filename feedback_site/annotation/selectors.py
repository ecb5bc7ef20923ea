"""Reads of the annotation data that need care (query counts, what an annotator may see)."""

from __future__ import annotations

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Greatest

from feedback_site.annotation.models import Assignment, AssignmentStatus, Judgment, Pair
from feedback_site.core.hashing import pseudonym
from feedback_site.core.rendering import render_markdown
from feedback_site.projects.models import GuidelineVersion, Project


def shown_to_people(responses):
    """`responses` (a Response queryset) without the answers the safety screen hides or holds for
    review: the one rule every task kind follows before a person is shown an answer."""
    return responses.exclude(safety_screen__verdict="flagged", safety_screen__action__in=["hide", "review"])


def warning_flag(warning: str | None) -> dict | None:
    """The payload's `safety_flag` for a response's warning: the page blurs the response behind
    the reason until the annotator clicks; None (shown normally) when there is no warning."""
    return {"action": "warn", "reason": warning} if warning else None


def _side(response) -> dict:
    html = response.text_html if response.text_html is not None else render_markdown(response.text)
    # The response's warning (written by the safety screen, feedback_site.safety): None unless warned.
    return {"text": response.text, "html": html, "safety_flag": warning_flag(response.warning)}


def assignment_payload(assignment: Assignment) -> dict:
    """What the annotator page and API show: nothing that says which model wrote a response or
    who else judged the pair. The ids (the pair's, the import's `id`, the stored responses' and
    which of A/B is on the left) let an API client file the judgment without matching texts;
    the page does not display them. `queue_pg._payload` builds the same dict in SQL's fast path."""
    pair = (
        Pair.objects.select_related("prompt", "response_a", "response_b", "project")
        .only(
            "project__criteria",
            "project__lease_seconds",
            "prompt__text",
            "prompt__system_prompt",
            "prompt__history",
            "prompt__text_html",
            "prompt__history_html",
            "prompt__metadata",
            "response_a__text",
            "response_b__text",
            "response_a__text_html",
            "response_b__text_html",
            "response_a__warning",
            "response_b__warning",
        )
        .get(pk=assignment.pair_id)
    )
    left, right = (pair.response_b, pair.response_a) if assignment.swapped else (pair.response_a, pair.response_b)
    prompt = pair.prompt
    history_html = prompt.history_html if prompt.history_html is not None else [render_markdown(t["content"]) for t in prompt.history]
    return {
        "assignment_id": assignment.pk,
        "pair_id": pair.pk,
        "import_id": (prompt.metadata or {}).get("id"),
        "shown_left": "b" if assignment.swapped else "a",
        "left_response_id": left.pk,
        "right_response_id": right.pk,
        "prompt": {
            "text": prompt.text,
            "html": prompt.text_html if prompt.text_html is not None else render_markdown(prompt.text),
            "system_prompt": prompt.system_prompt,
            "history": [
                {"role": turn["role"], "content": turn["content"], "html": html} for turn, html in zip(prompt.history, history_html)
            ],
        },
        "left": _side(left),
        "right": _side(right),
        "criteria": list(pair.project.criteria or []),
        "expires_at": assignment.expires_at.isoformat(),
        "lease_seconds": pair.project.lease_seconds,
    }


def annotator_progress(*, project: Project, annotator) -> dict:
    judged = Judgment.objects.filter(pair__project=project, annotator=annotator).count()
    skipped = Assignment.objects.filter(pair__project=project, annotator=annotator, status=AssignmentStatus.SKIPPED).count()
    remaining = (
        Pair.objects.filter(project=project, is_complete=False).aggregate(slots=Sum(Greatest(F("overlap") - F("judgment_count"), 0)))[
            "slots"
        ]
        or 0
    )
    return {"judged": judged, "skipped": skipped, "remaining_in_project": remaining}


def project_progress(project: Project) -> dict:
    stats = Pair.objects.filter(project=project).aggregate(
        pairs=Count("id"),
        queued=Count("id", filter=Q(overlap__gt=0)),
        complete=Count("id", filter=Q(is_complete=True, overlap__gt=0)),
        judgments=Sum("judgment_count"),
        needed=Sum("overlap"),
    )
    return {key: value or 0 for key, value in stats.items()}


def current_guideline(project: Project) -> GuidelineVersion | None:
    return GuidelineVersion.objects.filter(project=project).order_by("-number").first()


def project_judgments(*, project: Project, annotator: str | None = None, since=None):
    """A project's judgments, oldest first, for the staff list (`api.judgment_list`): filtered by
    annotator (the pseudonym exports use, `ann-…`, or a user id) and by `created_at >= since`.

    A pseudonym is an HMAC, so it cannot be matched in SQL: it is resolved to the user id among
    the project's annotators first (one small DISTINCT query). An unknown annotator gives no rows.
    """
    judgments = (
        Judgment.objects.filter(pair__project=project)
        .select_related("pair__prompt", "guideline_version")
        .only(
            "pair_id",
            "annotator_id",
            "choice",
            "preferred",
            "swapped",
            "strength",
            "criteria",
            "rationale",
            "time_spent_ms",
            "accepted_after_expiry",
            "created_at",
            "pair__prompt__metadata",
            "guideline_version__number",
        )
        .order_by("id")
    )
    if annotator:
        if annotator.isdigit():
            user_id = int(annotator)
        else:
            ids = Judgment.objects.filter(pair__project=project).values_list("annotator_id", flat=True).distinct().order_by()
            user_id = next((uid for uid in ids if pseudonym(project.pk, uid) == annotator), None)
        if user_id is None:
            return judgments.none()
        judgments = judgments.filter(annotator_id=user_id)
    if since is not None:
        judgments = judgments.filter(created_at__gte=since)
    return judgments


def judgment_fields(project_id: int, judgment: Judgment) -> dict:
    """One judgment as exports show it (a snapshot's judgments.jsonl, the staff list): the
    annotator pseudonymous, the choice as clicked and the order the sides were shown in."""
    return {
        "judgment_id": judgment.pk,
        "pair_id": judgment.pair_id,
        "annotator": pseudonym(project_id, judgment.annotator_id),
        "choice": judgment.choice,
        "preferred": judgment.preferred,
        "order_shown": ["b", "a"] if judgment.swapped else ["a", "b"],
        "strength": judgment.strength or None,
        "criteria": judgment.criteria,
        "rationale": judgment.rationale,
        "time_spent_ms": judgment.time_spent_ms,
        "guideline_version": judgment.guideline_version.number if judgment.guideline_version else None,
        "accepted_after_expiry": judgment.accepted_after_expiry,
        "created_at": judgment.created_at.isoformat(),
    }


def judgment_row(project: Project, judgment: Judgment) -> dict:
    """One judgment as the staff list shows it: the export's fields and the id the pair's prompt
    had in its import file."""
    return {**judgment_fields(project.pk, judgment), "import_id": (judgment.pair.prompt.metadata or {}).get("id")}
