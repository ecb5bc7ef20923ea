"""Statistics for evaluation and leaderboards: bootstrap intervals, win-rates, Bradley–Terry.

Django-free and torch-free (NumPy only), so the site, the workers and the benchmarks share one
implementation.

Conventions used everywhere in the project:

* **Outcomes** of a comparison of A against B are 1 (A wins), 0.5 (tie) and 0 (A loses). A tie
  counts as half a win, so a win-rate is the mean outcome: 6 wins, 2 ties and 2 losses out of 10
  is a win-rate of (6 + 2 * 0.5) / 10 = 0.70. This is the usual convention (AlpacaEval, Chatbot
  Arena) and keeps the win-rate of A over B equal to 1 minus that of B over A.
* **Bootstrap intervals** are percentile intervals: resample the observations with replacement
  `n_resamples` times, compute the statistic on each resample, and take the inverse-CDF
  ("type 1") quantiles at `(1 - confidence) / 2` and `(1 + confidence) / 2`: the smallest
  resampled value whose empirical CDF reaches the level. A fixed `seed` makes them reproducible.
* **Bradley–Terry** strengths `p_i > 0` model P(i beats j) = p_i / (p_i + p_j); ties count as half
  a win for each side. They are fitted by Hunter's (2004) MM algorithm, normalised to a geometric
  mean of 1, and reported as Elo-like ratings `1000 + 400 * log10(p_i)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "BootstrapCI",
    "bootstrap_ci",
    "win_rate",
    "BradleyTerryFit",
    "bradley_terry",
    "bradley_terry_bootstrap",
    "length_bias",
    "ELO_BASE",
    "ELO_SCALE",
]

ELO_BASE = 1000.0
ELO_SCALE = 400.0


@dataclass(frozen=True)
class BootstrapCI:
    """A point estimate with its bootstrap interval."""

    estimate: float
    low: float
    high: float
    confidence: float
    n: int
    n_resamples: int

    def to_dict(self) -> dict:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "n": self.n,
            "n_resamples": self.n_resamples,
        }


def _quantile_type1(sorted_values: np.ndarray, level: float) -> float:
    """Smallest value whose empirical CDF is >= level (inverse CDF, Hyndman & Fan type 1)."""
    n = len(sorted_values)
    # CDF at sorted_values[k] is (k + 1) / n; want the smallest k with (k + 1) / n >= level.
    k = max(0, math.ceil(level * n - 1e-9) - 1)
    return float(sorted_values[min(k, n - 1)])


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[[np.ndarray], float] | None = None,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapCI:
    """Percentile bootstrap interval of `statistic` (default: the mean) of `values`.

    With the mean, resampling is vectorised (n_resamples x n indices at once, in chunks), so
    10 000 resamples of 1 000 outcomes take well under a second.
    """
    data = np.asarray(list(values), dtype=float)
    if data.ndim != 1 or len(data) == 0:
        raise ValueError("bootstrap_ci needs a non-empty list of numbers")
    if not np.all(np.isfinite(data)):
        raise ValueError("bootstrap_ci: values must be finite numbers")
    if not (0 < confidence < 1):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples!r}")
    rng = np.random.default_rng(seed)
    n = len(data)
    if statistic is None:
        estimate = float(data.mean())
        stats = np.empty(n_resamples)
        chunk = max(1, 2_000_000 // n)
        for start in range(0, n_resamples, chunk):
            stop = min(n_resamples, start + chunk)
            idx = rng.integers(0, n, size=(stop - start, n))
            stats[start:stop] = data[idx].mean(axis=1)
    else:
        estimate = float(statistic(data))
        stats = np.array([float(statistic(data[rng.integers(0, n, size=n)])) for _ in range(n_resamples)])
    stats.sort()
    alpha = (1 - confidence) / 2
    return BootstrapCI(
        estimate=estimate,
        low=_quantile_type1(stats, alpha),
        high=_quantile_type1(stats, 1 - alpha),
        confidence=confidence,
        n=n,
        n_resamples=n_resamples,
    )


def win_rate(outcomes: Sequence[float], *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict:
    """Win-rate (ties count half) with its bootstrap interval and the win/tie/loss counts."""
    values = [float(o) for o in outcomes]
    for value in values:
        if value not in (0.0, 0.5, 1.0):
            raise ValueError(f"outcomes must be 1 (win), 0.5 (tie) or 0 (loss), got {value!r}")
    wins = sum(1 for v in values if v == 1.0)
    ties = sum(1 for v in values if v == 0.5)
    losses = len(values) - wins - ties
    result = {"n": len(values), "wins": wins, "ties": ties, "losses": losses}
    if not values:
        return {**result, "win_rate": None, "low": None, "high": None, "confidence": confidence}
    ci = bootstrap_ci(values, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return {**result, "win_rate": ci.estimate, "low": ci.low, "high": ci.high, "confidence": confidence}


def length_bias(
    outcomes: Sequence[float],
    first_lengths: Sequence[int],
    second_lengths: Sequence[int],
    *,
    threshold: float = 0.7,
    min_decisive: int = 10,
) -> dict:
    """How often the winner of a decisive comparison is the longer answer.

    Ties and equal-length pairs are left out. `warning` is True when at least `min_decisive`
    comparisons remain and the longer answer won more than `threshold` of them: a reward model
    that prefers length would produce exactly that, so the win-rate should not be trusted alone.
    """
    decisive = longer_won = 0
    for outcome, a, b in zip(outcomes, first_lengths, second_lengths, strict=True):
        if outcome == 0.5 or a == b:
            continue
        decisive += 1
        if (outcome == 1.0) == (a > b):
            longer_won += 1
    fraction = longer_won / decisive if decisive else None
    return {
        "decisive": decisive,
        "longer_won": longer_won,
        "longer_won_fraction": fraction,
        "threshold": threshold,
        "warning": bool(fraction is not None and decisive >= min_decisive and fraction > threshold),
    }


# --------------------------------------------------------------------------------------------
# Bradley–Terry
# --------------------------------------------------------------------------------------------

Comparison = tuple[Hashable, Hashable, float]
"""(a, b, outcome for a): 1 a won, 0.5 tie, 0 b won."""


@dataclass
class BradleyTerryFit:
    items: list[Hashable]
    strengths: dict[Hashable, float]
    ratings: dict[Hashable, float]
    iterations: int
    converged: bool
    games: dict[Hashable, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "items": [str(i) for i in self.items],
            "strengths": {str(k): v for k, v in self.strengths.items()},
            "ratings": {str(k): v for k, v in self.ratings.items()},
            "iterations": self.iterations,
            "converged": self.converged,
            "games": {str(k): v for k, v in self.games.items()},
        }


def _normalise_comparisons(comparisons: Iterable) -> list[Comparison]:
    out: list[Comparison] = []
    for index, item in enumerate(comparisons):
        if len(item) == 2:
            a, b = item
            outcome = 1.0
        elif len(item) == 3:
            a, b, outcome = item
            outcome = float(outcome)
        else:
            raise ValueError(f"comparison {index}: expected (winner, loser) or (a, b, outcome)")
        if outcome not in (0.0, 0.5, 1.0):
            raise ValueError(f"comparison {index}: outcome must be 1, 0.5 or 0, got {outcome!r}")
        if a == b:
            raise ValueError(f"comparison {index}: an item cannot be compared with itself ({a!r})")
        out.append((a, b, outcome))
    return out


def _mm(
    wins: np.ndarray, games: np.ndarray, prior: float, max_iter: int, tol: float, start: np.ndarray | None = None
) -> tuple[np.ndarray, int, bool]:
    """Hunter's MM iterations on a wins vector and a symmetric games matrix; strengths, iterations, converged."""
    k = len(wins)
    p = np.ones(k) if start is None else start.copy()
    for iteration in range(1, max_iter + 1):
        denom = (games / (p[:, None] + p[None, :])).sum(axis=1) + prior / (p + 1.0)
        numer = wins + prior / 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            new = np.where(denom > 0, numer / denom, 1.0)
        new = np.maximum(new, 1e-300)
        if prior == 0:
            new = new / math.exp(float(np.mean(np.log(new))))
        # Ratings are relative, so convergence is judged on the centred log-strengths: with a small
        # prior the overall scale (fixed only by the phantom's few virtual games) drifts slowly
        # while the ratios are long settled.
        log_new, log_old = np.log(new), np.log(p)
        change = float(np.max(np.abs((log_new - log_new.mean()) - (log_old - log_old.mean()))))
        p = new
        if change < tol:
            return p, iteration, True
    return p, max_iter, False


def bradley_terry(
    comparisons: Iterable,
    *,
    items: Sequence[Hashable] | None = None,
    prior: float = 0.0,
    max_iter: int = 10_000,
    tol: float = 1e-10,
) -> BradleyTerryFit:
    """Fit Bradley–Terry strengths by the MM algorithm (Hunter 2004, eq. 3).

    `comparisons` are `(winner, loser)` pairs or `(a, b, outcome)` triples (outcome for `a`: 1,
    0.5 or 0). Each iteration sets p_i <- W_i / sum_j n_ij / (p_i + p_j), where W_i counts wins
    (ties as half) and n_ij the games between i and j, then renormalises to a geometric mean of 1.

    `prior` adds that many virtual games of every item against a phantom opponent of strength 1,
    half won and half lost. It keeps an undefeated or winless item finite (the pure maximum
    likelihood estimate is then infinite) and shrinks items with few games toward the middle.
    With `prior=0` the result is the plain maximum likelihood estimate, which exists only when
    the comparison graph is strongly connected; otherwise the fit stops at `max_iter` with
    `converged=False`.
    """
    data = _normalise_comparisons(comparisons)
    order: list[Hashable] = list(items) if items is not None else []
    seen = set(order)
    for a, b, _ in data:
        for x in (a, b):
            if x not in seen:
                seen.add(x)
                order.append(x)
    if not order:
        return BradleyTerryFit(items=[], strengths={}, ratings={}, iterations=0, converged=True)
    index = {item: i for i, item in enumerate(order)}
    k = len(order)
    wins = np.zeros(k)
    games = np.zeros((k, k))
    for a, b, outcome in data:
        i, j = index[a], index[b]
        wins[i] += outcome
        wins[j] += 1.0 - outcome
        games[i, j] += 1
        games[j, i] += 1
    if prior < 0:
        raise ValueError("prior must be >= 0")
    p, iterations, converged = _mm(wins, games, prior, max_iter, tol)
    p = p / math.exp(float(np.mean(np.log(p))))
    strengths = {item: float(p[index[item]]) for item in order}
    ratings = {item: ELO_BASE + ELO_SCALE * math.log10(value) for item, value in strengths.items()}
    counts = {item: int(games[index[item]].sum()) for item in order}
    return BradleyTerryFit(items=order, strengths=strengths, ratings=ratings, iterations=iterations, converged=converged, games=counts)


def bradley_terry_bootstrap(
    comparisons: Iterable,
    *,
    n_resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    prior: float = 1.0,
    items: Sequence[Hashable] | None = None,
) -> dict:
    """Bradley–Terry ratings with percentile bootstrap intervals (comparisons resampled whole).

    Returns `{"fit": BradleyTerryFit, "intervals": {item: (low, high)}, ...}` in rating units.
    The default `prior=1` (one virtual tie against the phantom) keeps resamples in which an item
    happens to win everything finite.
    """
    data = _normalise_comparisons(comparisons)
    fit = bradley_terry(data, items=items, prior=prior)
    if not data:
        return {"fit": fit, "intervals": {}, "n_resamples": 0, "confidence": confidence, "n": 0}
    rng = np.random.default_rng(seed)
    index = {item: i for i, item in enumerate(fit.items)}
    first = np.array([index[a] for a, _, _ in data])
    second = np.array([index[b] for _, b, _ in data])
    outcome = np.array([o for _, _, o in data], dtype=float)
    k = len(fit.items)
    start = np.array([fit.strengths[item] for item in fit.items])
    samples: dict[Hashable, list[float]] = {item: [] for item in fit.items}
    for _ in range(n_resamples):
        picked = rng.integers(0, len(data), size=len(data))
        a, b, o = first[picked], second[picked], outcome[picked]
        wins = np.bincount(a, weights=o, minlength=k) + np.bincount(b, weights=1.0 - o, minlength=k)
        games = np.zeros((k, k))
        np.add.at(games, (a, b), 1.0)
        games = games + games.T
        # Warm start from the full fit: a resample's optimum is close to it.
        p, _, _ = _mm(wins, games, prior, 2000, 1e-7, start=start)
        p = p / math.exp(float(np.mean(np.log(p))))
        for item, i in index.items():
            samples[item].append(ELO_BASE + ELO_SCALE * math.log10(float(p[i])))
    alpha = (1 - confidence) / 2
    intervals = {}
    for item, values in samples.items():
        ordered = np.sort(np.asarray(values))
        intervals[item] = (_quantile_type1(ordered, alpha), _quantile_type1(ordered, 1 - alpha))
    return {"fit": fit, "intervals": intervals, "n_resamples": n_resamples, "confidence": confidence, "n": len(data)}
