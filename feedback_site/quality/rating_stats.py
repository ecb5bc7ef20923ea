"""Quality of thumbs up / down ratings: agreement between raters and each rater's balance.

Agreement is Krippendorff's alpha (nominal, the maintained `krippendorff` package through
`stats.krippendorff_alpha`) over answers rated by two or more people, with raw pairwise agreement
beside it. A rater whose share of thumbs up is far from the others' (always up, always down) is
the rating counterpart of a position-biased annotator, so each rater's share is shown.
"""

from __future__ import annotations

from statistics import median

from django.db.models import Count, Q

from feedback_site.projects.models import Project
from feedback_site.quality.stats import agreement_from_counts, krippendorff_alpha, value_counts
from feedback_site.ratings.models import AnswerRating, Rating, RatingTask

THUMBS = (True, False)


def rating_statistics(project: Project) -> dict:
    """Counts, class balance, agreement and per-rater rows of the project's ratings."""
    ratings = list(Rating.objects.filter(task__project=project).values_list("task_id", "label", "annotator__username", "time_spent_ms"))
    queued = RatingTask.objects.filter(project=project, overlap__gt=0).aggregate(
        tasks=Count("pk"), complete=Count("pk", filter=Q(is_complete=True))
    )
    by_task: dict[int, list[bool]] = {}
    by_rater: dict[str, list[tuple[bool, int | None]]] = {}
    for task_id, label, username, time_spent_ms in ratings:
        by_task.setdefault(task_id, []).append(label)
        by_rater.setdefault(username, []).append((label, time_spent_ms))
    shared = [labels for labels in by_task.values() if len(labels) >= 2]
    up = sum(label for _, label, _, _ in ratings)
    rows = []
    for username, given in sorted(by_rater.items()):
        times = [t for _, t in given if t is not None]
        rows.append(
            {
                "rater": username,
                "rated": len(given),
                "up_share": sum(label for label, _ in given) / len(given),
                "median_seconds": median(times) / 1000 if times else None,
            }
        )
    return {
        "tasks": queued["tasks"],
        "complete": queued["complete"],
        "ratings": len(ratings),
        "up": up,
        "down": len(ratings) - up,
        "playground": AnswerRating.objects.filter(project=project).count(),
        "shared_answers": len(shared),
        "alpha": krippendorff_alpha(shared, THUMBS) if shared else None,
        "agreement": agreement_from_counts(value_counts(shared, THUMBS)) if shared else None,
        "raters": rows,
    }
