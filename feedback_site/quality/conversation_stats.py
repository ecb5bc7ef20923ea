"""Quality of conversation turns. Each annotator judges candidates sampled for their own path, so
no two people judge the same replies and agreement between annotators is not defined; what can go
wrong instead is measured per annotator:

- position bias: the candidates are shown in the order they were sampled, which is random with
  respect to their quality, so an annotator who picks the first one shown more often than the
  1 / K expected by chance is flagged (two-sided binomial test, scipy, at `BIAS_ALPHA`);
- ties (a turn whose best tier holds more than one reply), edits of the chosen reply, user turns
  written by the annotator, and the median time per turn (too fast is the usual sign of clicking
  through);
- generation: turns whose replies needed more than one attempt (a worker died or failed).
"""

from __future__ import annotations

from statistics import fmean, median

from feedback_site.conversations.models import BranchPoint, ConversationNode, ConversationTask, NodeSource
from feedback_site.projects.models import Project

BIAS_ALPHA = 0.01


def first_shown_bias(picked_first: int, turns: int, expected: float) -> float | None:
    """p-value of picking the first reply shown `picked_first` times in `turns` when chance says `expected`."""
    from scipy.stats import binomtest

    if turns == 0:
        return None
    return float(binomtest(picked_first, turns, expected).pvalue)


def conversation_statistics(project: Project) -> dict:
    points = list(
        BranchPoint.objects.filter(task__project=project, judged_at__isnull=False, annotator__isnull=False)
        .values_list("annotator__username", "order", "chosen_id", "continued_with_id", "next_user_node_id", "time_spent_ms", "attempts")
        .order_by("id")
    )
    first_shown = dict(
        ConversationNode.objects.filter(task__project=project, source=NodeSource.CANDIDATE).values_list("pk", "sample_index")
    )
    authored = set(ConversationNode.objects.filter(task__project=project, author__isnull=False, role="user").values_list("pk", flat=True))
    by_annotator: dict[str, dict] = {}
    for username, order, chosen, continued, next_user, time_ms, _attempts in points:
        mine = by_annotator.setdefault(username, {"turns": 0, "first": 0, "expected": [], "ties": 0, "edits": 0, "written": 0, "times": []})
        mine["turns"] += 1
        k = sum(len(tier) for tier in order)
        mine["expected"].append(1 / k)
        mine["first"] += first_shown.get(chosen) == 0
        mine["ties"] += len(order[0]) > 1
        mine["edits"] += continued is not None and continued != chosen
        mine["written"] += next_user in authored
        if time_ms is not None:
            mine["times"].append(time_ms)
    rows = []
    for username, mine in sorted(by_annotator.items()):
        expected = fmean(mine["expected"])
        p = first_shown_bias(mine["first"], mine["turns"], expected)
        rows.append(
            {
                "annotator": username,
                "turns": mine["turns"],
                "first_shown_rate": mine["first"] / mine["turns"],
                "expected_rate": expected,
                "position_p": p,
                "position_biased": p is not None and p < BIAS_ALPHA and mine["first"] / mine["turns"] > expected,
                "ties": mine["ties"],
                "edits": mine["edits"],
                "written_user_turns": mine["written"],
                "median_seconds": median(mine["times"]) / 1000 if mine["times"] else None,
            }
        )
    queued = ConversationTask.objects.filter(project=project, overlap__gt=0)
    return {
        "tasks": queued.count(),
        "complete": queued.filter(is_complete=True).count(),
        "turns_judged": len(points),
        "retried_turns": sum(1 for *_, attempts in points if attempts > 1),
        "annotators": rows,
    }
