"""Reads of ratings that need care: an annotator's progress (the page's counters survive a reload)."""

from __future__ import annotations

from django.db.models import F, Sum
from django.db.models.functions import Greatest

from feedback_site.annotation.models import AssignmentStatus
from feedback_site.projects.models import Project
from feedback_site.ratings.models import Rating, RatingAssignment, RatingTask


def rating_progress(*, project: Project, annotator) -> dict:
    """What the annotator did here and how many ratings the project still needs."""
    rated = Rating.objects.filter(task__project=project, annotator=annotator).count()
    skipped = RatingAssignment.objects.filter(task__project=project, annotator=annotator, status=AssignmentStatus.SKIPPED).count()
    remaining = (
        RatingTask.objects.filter(project=project, is_complete=False).aggregate(
            slots=Sum(Greatest(F("overlap") - F("submitted_count"), 0))
        )["slots"]
        or 0
    )
    return {"rated": rated, "skipped": skipped, "remaining_in_project": remaining}
