"""Reads of rankings that need care: an annotator's progress (the page's counters survive a reload)."""

from __future__ import annotations

from django.db.models import F, Sum
from django.db.models.functions import Greatest

from feedback_site.annotation.models import AssignmentStatus
from feedback_site.projects.models import Project
from feedback_site.rankings.models import Ranking, RankingAssignment, RankingTask


def ranking_progress(*, project: Project, annotator) -> dict:
    """What the annotator did here and how many rankings the project still needs."""
    ranked = Ranking.objects.filter(task__project=project, annotator=annotator).count()
    skipped = RankingAssignment.objects.filter(task__project=project, annotator=annotator, status=AssignmentStatus.SKIPPED).count()
    remaining = (
        RankingTask.objects.filter(project=project, is_complete=False, is_gold=False).aggregate(
            slots=Sum(Greatest(F("overlap") - F("submitted_count"), 0))
        )["slots"]
        or 0
    )
    return {"ranked": ranked, "skipped": skipped, "remaining_in_project": remaining}
