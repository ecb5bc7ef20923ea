"""Quality of K-way rankings: agreement between annotators, gold rankings, position bias.

Agreement: Krippendorff's alpha at the ordinal level (the `krippendorff` package, through
`rlhf.rankings.ordinal_alpha`) over answer sets ranked by two or more annotators, each answer's
value being its tier; beside it the mean Kendall's tau-b (scipy) over every two rankings of the
same set. Per annotator: rankings, mean tau-b against the others on shared sets, gold rankings
correct (none of the gold order's pairs reversed) and mean tau-b against the gold order, and
position bias: Spearman's rho (scipy) between where an answer was shown (0 = first) and the tier it
was given, pooled over the annotator's rankings. With the order randomised per lease, an unbiased
annotator's rho is near 0; a strongly positive rho means answers shown first get ranked higher,
and the annotator is flagged when the test's p-value is below `BIAS_ALPHA`.
"""

from __future__ import annotations

import itertools
import math
from statistics import fmean

from feedback_site.projects.models import Project
from feedback_site.rankings.models import Ranking
from rlhf.rankings import kendall_tau, ordinal_alpha, positions

BIAS_ALPHA = 0.01


def display_position_bias(rankings: list[tuple[list, list]]) -> tuple[float | None, float | None]:
    """(rho, p) of Spearman's correlation between shown position and tier index, over
    (order_shown, tiers) rankings: positive when answers shown earlier are ranked better. None
    when undefined (no variation)."""
    from scipy.stats import spearmanr

    shown_at, tier_of = [], []
    for order_shown, tiers in rankings:
        placed = positions(tiers)
        for index, answer in enumerate(order_shown):
            shown_at.append(index)
            tier_of.append(placed[answer])
    if len(shown_at) < 3 or len(set(tier_of)) < 2:
        return None, None
    result = spearmanr(shown_at, tier_of)
    rho, p = float(result.statistic), float(result.pvalue)
    if math.isnan(rho):
        return None, None
    return rho, p


def ranking_statistics(project: Project) -> dict:
    """Counts, agreement, gold and per-annotator rows of the project's rankings."""
    rows = list(
        Ranking.objects.filter(task__project=project)
        .exclude(all_unacceptable=True)
        .values_list("task_id", "annotator__username", "tiers", "order_shown", "task__is_gold", "task__gold_order", "gold_correct")
    )
    unacceptable = Ranking.objects.filter(task__project=project, all_unacceptable=True).count()
    by_task: dict[int, list[tuple[str, list]]] = {}
    by_annotator: dict[str, dict] = {}
    for task_id, username, tiers, order_shown, is_gold, gold_order, correct in rows:
        by_task.setdefault(task_id, []).append((username, tiers))
        mine = by_annotator.setdefault(username, {"rankings": 0, "shown": [], "taus": [], "gold": [], "gold_taus": []})
        mine["rankings"] += 1
        mine["shown"].append((order_shown, tiers))
        if is_gold:
            mine["gold"].append(bool(correct))
            tau = kendall_tau(tiers, gold_order)
            if tau is not None:
                mine["gold_taus"].append(tau)
    shared = {task_id: ranked for task_id, ranked in by_task.items() if len(ranked) >= 2}
    taus = []
    for ranked in shared.values():
        for (first_user, first), (second_user, second) in itertools.combinations(ranked, 2):
            tau = kendall_tau(first, second)
            if tau is not None:
                taus.append(tau)
                by_annotator[first_user]["taus"].append(tau)
                by_annotator[second_user]["taus"].append(tau)
    annotators = []
    for username, mine in sorted(by_annotator.items()):
        rho, p = display_position_bias(mine["shown"])
        annotators.append(
            {
                "annotator": username,
                "rankings": mine["rankings"],
                "mean_tau": fmean(mine["taus"]) if mine["taus"] else None,
                "gold_correct": sum(mine["gold"]),
                "gold_judged": len(mine["gold"]),
                "gold_tau": fmean(mine["gold_taus"]) if mine["gold_taus"] else None,
                "position_rho": rho,
                "position_p": p,
                "position_biased": p is not None and rho is not None and rho > 0 and p < BIAS_ALPHA,
            }
        )
    return {
        "rankings": len(rows) + unacceptable,
        "all_unacceptable": unacceptable,
        "tasks_ranked": len(by_task),
        "shared_tasks": len(shared),
        "alpha": ordinal_alpha([[tiers for _, tiers in ranked] for ranked in shared.values()]) if shared else None,
        "mean_tau": fmean(taus) if taus else None,
        "annotators": annotators,
    }
