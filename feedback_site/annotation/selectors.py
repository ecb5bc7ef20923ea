"""Reads of the annotation data that need care (query counts, what an annotator may see)."""

from __future__ import annotations

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Greatest

from feedback_site.annotation.models import Assignment, AssignmentStatus, Judgment, Pair
from feedback_site.core.rendering import render_markdown
from feedback_site.projects.models import GuidelineVersion, Project


def warning_flag(warning: str | None) -> dict | None:
    """The payload's `safety_flag` for a response's warning: the page blurs the response behind
    the reason until the annotator clicks; None (shown normally) when there is no warning."""
    return {"action": "warn", "reason": warning} if warning else None


def _side(response) -> dict:
    html = response.text_html if response.text_html is not None else render_markdown(response.text)
    # The response's warning (written by the safety screen, feedback_site.safety): None unless warned.
    return {"text": response.text, "html": html, "safety_flag": warning_flag(response.warning)}


def assignment_payload(assignment: Assignment) -> dict:
    """What the annotator page and API show: nothing that says which response is A or B,
    which model wrote it, or who else judged the pair."""
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
