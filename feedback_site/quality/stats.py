"""Annotation-quality statistics as pure functions (no database, no Django).

Labels are nominal. A judgment's canonical label (`Judgment.preferred`) is one of four categories:
"a", "b", "tie" and "both_bad". **Ties and both-bad are categories of their own**: two annotators
agree on a pair only when they chose the same one of the four, so "tie" vs "a" is a disagreement,
and "tie" vs "tie" an agreement. Agreement is computed on canonical labels (which stored response
was preferred), not on the clicked side, so display order does not matter.

* `pairwise_agreement`: raw (observed) agreement over overlapping pairs: the share of ordered
  pairs of judgments made on the same pair by different annotators that carry the same label,
  i.e. sum over units of sum_c n_c (n_c - 1) divided by sum over units of n (n - 1). Units with one
  judgment carry no information and are ignored.
* `krippendorff_alpha`: Krippendorff's alpha for nominal data, computed by the maintained
  `krippendorff` package from the units x categories value-count matrix (missing values are just
  absent judgments).
* `annotator_agreement`: per annotator, the share of the other annotators' judgments on the
  pairs they also judged that carry the same label.
* `position_bias`: share of "left" among an annotator's left/right choices (tie and both-bad do
  not count), with an exact two-sided binomial test against 0.5 (`scipy.stats.binomtest`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

LABELS = ("a", "b", "tie", "both_bad")
LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}
DEFAULT_BIAS_ALPHA = 0.05


def pairwise_agreement(units: Iterable[Sequence[Hashable]]) -> float | None:
    """Observed agreement over units (each a sequence of labels by distinct annotators)."""
    agreeing = total = 0
    for labels in units:
        n = len(labels)
        if n < 2:
            continue
        total += n * (n - 1)
        agreeing += sum(c * (c - 1) for c in Counter(labels).values())
    return agreeing / total if total else None


def value_counts(units: Iterable[Sequence[Hashable]], categories: Sequence[Hashable] = LABELS):
    """The units x categories matrix of how many judgments of each label each unit has."""
    import numpy as np

    index = {c: i for i, c in enumerate(categories)}
    rows = [labels for labels in units if len(labels) >= 2]
    matrix = np.zeros((len(rows), len(categories)), dtype=float)
    for row, labels in enumerate(rows):
        for label in labels:
            matrix[row, index[label]] += 1
    return matrix


def krippendorff_alpha(units: Iterable[Sequence[Hashable]], categories: Sequence[Hashable] = LABELS) -> float | None:
    """Krippendorff's alpha (nominal) over units with at least two labels each; None when it is
    undefined (no pairable values, or every value in one category so expected disagreement is 0)."""
    import krippendorff
    import numpy as np

    matrix = value_counts(units, categories)
    if matrix.shape[0] == 0:
        return None
    totals = matrix.sum(axis=0)
    if (totals > 0).sum() < 2:
        return None
    value = float(krippendorff.alpha(value_counts=matrix, level_of_measurement="nominal"))
    return None if np.isnan(value) else value


def agreement_from_counts(matrix) -> float | None:
    """pairwise_agreement over a units x categories value-count matrix (numpy)."""
    n = matrix.sum(axis=1)
    total = float((n * (n - 1)).sum())
    return float((matrix * (matrix - 1)).sum()) / total if total else None


def alpha_from_counts(matrix) -> float | None:
    """krippendorff_alpha over a units x categories value-count matrix (rows with < 2 values ignored)."""
    import krippendorff
    import numpy as np

    matrix = matrix[matrix.sum(axis=1) >= 2]
    if matrix.shape[0] == 0 or (matrix.sum(axis=0) > 0).sum() < 2:
        return None
    value = float(krippendorff.alpha(value_counts=matrix, level_of_measurement="nominal"))
    return None if np.isnan(value) else value


def reliability_to_units(rows: Sequence[Sequence[object]], missing: object = None) -> list[list[object]]:
    """Turns a coders x units reliability matrix (as printed in the literature) into per-unit
    label lists, dropping missing values."""
    n_units = len(rows[0]) if rows else 0
    return [[row[u] for row in rows if row[u] is not missing] for u in range(n_units)]


def annotator_agreement(judgments: Iterable[tuple[Hashable, Hashable, Hashable]]) -> dict[Hashable, tuple[int, int]]:
    """judgments: (unit, annotator, label) triples. Returns {annotator: (agreeing, compared)}:
    over every unit the annotator judged, the other annotators' judgments that match theirs
    (agreeing) out of all the other annotators' judgments (compared)."""
    by_unit: dict[Hashable, list[tuple[Hashable, Hashable]]] = defaultdict(list)
    for unit, annotator, label in judgments:
        by_unit[unit].append((annotator, label))
    out: dict[Hashable, list[int]] = defaultdict(lambda: [0, 0])
    for entries in by_unit.values():
        if len(entries) < 2:
            continue
        counts = Counter(label for _, label in entries)
        n = len(entries)
        for annotator, label in entries:
            tally = out[annotator]
            tally[0] += counts[label] - 1
            tally[1] += n - 1
    return {annotator: (agree, compared) for annotator, (agree, compared) in out.items()}


@dataclass(frozen=True)
class PositionBias:
    left: int
    right: int
    left_rate: float | None
    p_value: float | None
    flagged: bool


def position_bias(left: int, right: int, *, alpha: float = DEFAULT_BIAS_ALPHA) -> PositionBias:
    """Left-choice rate among left/right choices and the two-sided exact binomial test of
    'left and right are equally likely'; flagged when p < alpha."""
    n = left + right
    if n == 0:
        return PositionBias(left, right, None, None, False)
    from scipy.stats import binomtest

    p_value = float(binomtest(left, n, 0.5, alternative="two-sided").pvalue)
    return PositionBias(left, right, left / n, p_value, p_value < alpha)


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def group_units(rows: Iterable[tuple[Hashable, Hashable, Hashable]]) -> dict[Hashable, list[Hashable]]:
    """(unit, annotator, label) rows -> {unit: [labels]}."""
    units: dict[Hashable, list[Hashable]] = defaultdict(list)
    for unit, _annotator, label in rows:
        units[unit].append(label)
    return units


def weighted_vote(votes: Sequence[tuple[Hashable, float]]) -> Hashable | None:
    """The label with strictly the largest total weight, else None."""
    totals: dict[Hashable, float] = defaultdict(float)
    for label, weight in votes:
        totals[label] += weight
    if not totals:
        return None
    ranked = sorted(totals.items(), key=lambda item: -item[1])
    if len(ranked) > 1 and abs(ranked[0][1] - ranked[1][1]) < 1e-12:
        return None
    return ranked[0][0]


def gold_weight(correct: int, judged: int) -> float:
    """Reliability weight from gold accuracy, Laplace-smoothed: (correct + 1) / (judged + 2).
    An annotator with no judged gold pairs weighs 0.5."""
    return (correct + 1) / (judged + 2)


def dawid_skene(
    judgments: Sequence[tuple[Hashable, Hashable, Hashable]],
    categories: Sequence[Hashable] = LABELS,
    *,
    iterations: int = 50,
    tolerance: float = 1e-6,
    smoothing: float = 0.01,
) -> tuple[dict[Hashable, dict[Hashable, float]], dict[Hashable, object]]:
    """Dawid & Skene (1979) EM estimate of each unit's true label and each annotator's confusion
    matrix, from (unit, annotator, label) triples. Initialised with per-unit vote shares (so one
    annotator gives that annotator's labels back). Returns ({unit: {label: posterior}},
    {annotator: K x K confusion matrix, rows = true label, columns = given label})."""
    import numpy as np

    units = sorted({u for u, _, _ in judgments}, key=str)
    annotators = sorted({a for _, a, _ in judgments}, key=str)
    if not units:
        return {}, {}
    u_index = {u: i for i, u in enumerate(units)}
    a_index = {a: i for i, a in enumerate(annotators)}
    c_index = {c: i for i, c in enumerate(categories)}
    k = len(categories)
    ui = np.array([u_index[u] for u, _, _ in judgments])
    ai = np.array([a_index[a] for _, a, _ in judgments])
    li = np.array([c_index[label] for _, _, label in judgments])

    posterior = np.zeros((len(units), k))
    np.add.at(posterior, (ui, li), 1.0)
    posterior /= posterior.sum(axis=1, keepdims=True)
    confusion = np.zeros((len(annotators), k, k))
    for _ in range(iterations):
        # M step: class priors and confusion matrices from the soft labels.
        prior = posterior.mean(axis=0) + 1e-9
        prior /= prior.sum()
        confusion[:] = smoothing
        np.add.at(confusion, (ai, slice(None), li), posterior[ui])
        confusion /= confusion.sum(axis=2, keepdims=True)
        # E step: posterior over each unit's true label.
        log_post = np.tile(np.log(prior), (len(units), 1))
        np.add.at(log_post, ui, np.log(confusion[ai, :, li]))
        log_post -= log_post.max(axis=1, keepdims=True)
        new = np.exp(log_post)
        new /= new.sum(axis=1, keepdims=True)
        delta = np.abs(new - posterior).max()
        posterior = new
        if delta < tolerance:
            break
    return (
        {u: {c: float(posterior[i, j]) for j, c in enumerate(categories)} for u, i in u_index.items()},
        {a: confusion[i] for a, i in a_index.items()},
    )


def map_label(posterior: Mapping[Hashable, float], *, margin: float = 1e-9) -> Hashable | None:
    """The most probable label, or None when the two best are level."""
    ranked = sorted(posterior.items(), key=lambda item: -item[1])
    if not ranked:
        return None
    if len(ranked) > 1 and ranked[0][1] - ranked[1][1] <= margin:
        return None
    return ranked[0][0]
