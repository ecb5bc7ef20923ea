"""Gold accuracy: how often each annotator's judgment of a gold pair matches its known label.

A judgment is correct when its `preferred` (the choice mapped back to canonical a/b/tie/both_bad
terms) equals the pair's `gold_label`; ties and both-bad are answers like any other. Computed by
one SQL aggregate (GROUP BY annotator), so dashboards can call it on large projects.
"""

from __future__ import annotations

from django.db.models import Count, F, Q

from feedback_site.annotation.models import Judgment


def _gold_judgments(project_id: int):
    return Judgment.objects.filter(pair__project_id=project_id, pair__is_gold=True).exclude(pair__gold_label="")


def gold_accuracy_by_annotator(project) -> dict[int, tuple[int, int]]:
    """{annotator user id: (correct, judged)} over the project's gold pairs; annotators who judged
    no gold pair are absent."""
    project_id = project if isinstance(project, int) else project.pk
    rows = (
        _gold_judgments(project_id)
        .order_by()
        .values("annotator_id")
        .annotate(judged=Count("id"), correct=Count("id", filter=Q(preferred=F("pair__gold_label"))))
        .values_list("annotator_id", "correct", "judged")
    )
    return {annotator_id: (correct, judged) for annotator_id, correct, judged in rows}


def gold_accuracy_of(project_id: int, user_id: int) -> tuple[int, int]:
    """(correct, judged) of one annotator: the check that runs after each of their gold judgments."""
    stats = (
        _gold_judgments(project_id)
        .filter(annotator_id=user_id)
        .aggregate(judged=Count("id"), correct=Count("id", filter=Q(preferred=F("pair__gold_label"))))
    )
    return stats["correct"] or 0, stats["judged"] or 0
