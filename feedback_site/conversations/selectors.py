"""Reads of conversations that need care: an annotator's progress (the page's counters survive a reload)."""

from __future__ import annotations

from django.db.models import F, Sum
from django.db.models.functions import Greatest

from feedback_site.annotation.models import AssignmentStatus
from feedback_site.conversations.models import BranchPoint, ConversationAssignment, ConversationResult, ConversationTask
from feedback_site.projects.models import Project


def conversation_progress(*, project: Project, annotator) -> dict:
    """What the annotator did here and how many conversations the project still needs."""
    finished = ConversationResult.objects.filter(task__project=project, annotator=annotator).count()
    turns = BranchPoint.objects.filter(task__project=project, annotator=annotator, judged_at__isnull=False).count()
    skipped = ConversationAssignment.objects.filter(task__project=project, annotator=annotator, status=AssignmentStatus.SKIPPED).count()
    remaining = (
        ConversationTask.objects.filter(project=project, is_complete=False).aggregate(
            slots=Sum(Greatest(F("overlap") - F("submitted_count"), 0))
        )["slots"]
        or 0
    )
    return {"finished": finished, "turns_judged": turns, "skipped": skipped, "remaining_in_project": remaining}
