"""K-way rankings: how a ranking of K answers becomes preference pairs, and how two rankings agree.

A ranking is a list of *tiers*, best first; each tier is a list of answer ids that the annotator
ranked equal (a tie), so `[[3], [1, 4], [2]]` reads "3 is best, 1 and 4 tie, 2 is worst". Every
answer shown appears exactly once. A ranking marked "all unacceptable" carries no preference.

Expansion to pairs (the rule snapshots use; InstructGPT trained its reward model on all
C(K, 2) comparisons of a ranking):

* one ranking gives a pair (winner, loser) for every two answers in different tiers; answers in
  the same tier give none (a tie is not a preference), and an "all unacceptable" ranking gives
  none;
* with several rankings of the same answers (overlap > 1), each answer pair is decided by the
  majority of the rankings that order it; an even vote gives none;
* each pair's `weight` is 1 / (decisive pairs of that answer set), so every ranked prompt weighs
  as much as one pair in total, however large K is (InstructGPT put all C(K, 2) pairs of a prompt
  in one batch element for the same reason: to keep a prompt's K answers from dominating by
  sheer number). Trainers that ignore weights see every pair once.

Agreement between two rankings of the same answers is Kendall's tau-b (scipy), which counts ties
correctly; over many annotators, Krippendorff's alpha at the ordinal level (the `krippendorff`
package) uses each answer's tier position as its value. No Django, no torch.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

Tiers = Sequence[Sequence[Hashable]]


def validate_tiers(tiers: Tiers, shown: Sequence[Hashable]) -> None:
    """ValueError naming the problem unless `tiers` ranks every shown answer exactly once."""
    if not isinstance(tiers, Sequence) or isinstance(tiers, (str, bytes)) or not tiers:
        raise ValueError("order: must be a non-empty list of tiers (lists of answer ids), best first")
    shown_set = set(shown)
    seen: list[Hashable] = []
    for index, tier in enumerate(tiers):
        if not isinstance(tier, Sequence) or isinstance(tier, (str, bytes)) or not tier:
            raise ValueError(f"order[{index}]: must be a non-empty list of answer ids")
        seen.extend(tier)
    counts = Counter(seen)
    repeated = sorted((str(answer) for answer, n in counts.items() if n > 1))
    if repeated:
        raise ValueError(f"order: answer {repeated[0]} is ranked more than once")
    unknown = sorted(str(answer) for answer in counts if answer not in shown_set)
    if unknown:
        raise ValueError(f"order: answer {unknown[0]} was not shown")
    missing = sorted(str(answer) for answer in shown if answer not in counts)
    if missing:
        raise ValueError(f"order: answer {missing[0]} is missing (rank every answer shown)")


def positions(tiers: Tiers) -> dict[Hashable, int]:
    """Each answer's tier index (0 = best); tied answers share one."""
    return {answer: index for index, tier in enumerate(tiers) for answer in tier}


def ranking_pairs(tiers: Tiers, *, all_unacceptable: bool = False) -> list[tuple[Hashable, Hashable]]:
    """The (winner, loser) pairs one ranking states: every two answers in different tiers."""
    if all_unacceptable:
        return []
    return [(a, b) for upper, lower in itertools.combinations(range(len(tiers)), 2) for a in tiers[upper] for b in tiers[lower]]


@dataclass(frozen=True)
class ExpandedPair:
    chosen: Hashable
    rejected: Hashable
    votes_for: int
    votes_against: int
    weight: float


def expand(rankings: Sequence[tuple[Tiers, bool]]) -> list[ExpandedPair]:
    """The pairs several rankings (tiers, all_unacceptable) of one answer set decide, by majority,
    each weighted 1 / (number of decided pairs); see the module docstring for the rule."""
    wins: Counter[tuple[Hashable, Hashable]] = Counter()
    for tiers, unacceptable in rankings:
        wins.update(ranking_pairs(tiers, all_unacceptable=unacceptable))
    decided = []
    done: set[frozenset] = set()
    for a, b in wins:
        key = frozenset((a, b))
        if key in done:
            continue
        done.add(key)
        for_a, for_b = wins[(a, b)], wins[(b, a)]
        if for_a != for_b:
            winner, loser = (a, b) if for_a > for_b else (b, a)
            decided.append((winner, loser, max(for_a, for_b), min(for_a, for_b)))
    weight = 1.0 / len(decided) if decided else 0.0
    return [
        ExpandedPair(chosen=winner, rejected=loser, votes_for=won, votes_against=lost, weight=weight)
        for winner, loser, won, lost in sorted(decided, key=str)
    ]


def kendall_tau(first: Tiers, second: Tiers) -> float | None:
    """Kendall's tau-b between two rankings of the same answers (1 = same order, -1 = reversed);
    None when it is undefined (one of them ranks every answer equal)."""
    from scipy.stats import kendalltau

    a, b = positions(first), positions(second)
    if set(a) != set(b):
        raise ValueError("the two rankings do not rank the same answers")
    answers = sorted(a, key=str)
    value = kendalltau([a[x] for x in answers], [b[x] for x in answers]).statistic
    return None if math.isnan(value) else float(value)


def ordinal_alpha(rankings_by_unit: Sequence[Sequence[Tiers]]) -> float | None:
    """Krippendorff's alpha (ordinal) over units = (ranked answer set, answer): each annotator's
    value for an answer is its tier position. None when undefined (fewer than two rankings of any
    set, or no variation at all)."""
    import krippendorff
    import numpy as np

    columns: list[list[float]] = []  # one column per (answer set, answer); rows = raters
    raters = max((len(rankings) for rankings in rankings_by_unit), default=0)
    if raters < 2:
        return None
    for rankings in rankings_by_unit:
        if len(rankings) < 2:
            continue
        placed = [positions(tiers) for tiers in rankings]
        for answer in sorted(placed[0], key=str):
            column = [float(p[answer]) for p in placed] + [np.nan] * (raters - len(placed))
            columns.append(column)
    if not columns:
        return None
    data = np.array(columns, dtype=float).T
    if np.nanmax(data) == np.nanmin(data):
        return None
    value = float(krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal"))
    return None if np.isnan(value) else value
