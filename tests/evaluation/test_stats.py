"""rlhf.stats against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from rlhf.stats import bootstrap_ci, bradley_terry, bradley_terry_bootstrap, length_bias, win_rate


def test_bootstrap_interval_matches_the_hand_computed_binomial_quantiles():
    # 10 wins and 10 losses. A resample's mean is Binomial(20, 0.5) / 20. By hand:
    # P(X <= 5) = 21700/2^20 = 0.0207 < 0.025 <= P(X <= 6) = 60460/2^20 = 0.0577, so the 2.5% quantile is 6/20;
    # P(X <= 13) = 0.9423 < 0.975 <= P(X <= 14) = 0.9793, so the 97.5% quantile is 14/20.
    ci = bootstrap_ci([1.0] * 10 + [0.0] * 10, n_resamples=20000, seed=1)
    assert ci.estimate == 0.5
    assert (ci.low, ci.high) == (0.3, 0.7)


def test_bootstrap_is_reproducible_and_rejects_bad_input():
    values = [1, 0, 0.5, 1, 1, 0, 1]
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    with pytest.raises(ValueError):
        bootstrap_ci([])
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, float("nan")])


def test_win_rate_counts_a_tie_as_half_a_win():
    result = win_rate([1, 1, 1, 1, 1, 1, 0.5, 0.5, 0, 0])
    assert result["win_rate"] == pytest.approx(0.7)
    assert (result["wins"], result["ties"], result["losses"]) == (6, 2, 2)
    assert result["low"] <= 0.7 <= result["high"]
    with pytest.raises(ValueError):
        win_rate([0.3])


def test_bradley_terry_recovers_the_hand_computed_strengths_of_a_small_tournament():
    # A beats B 2-1, B beats C 2-1, A beats C 4-1. Strengths (4, 2, 1) solve the likelihood
    # equations W_i = sum_j n_ij p_i / (p_i + p_j) exactly:
    #   A: 3*4/6 + 5*4/5 = 2 + 4 = 6 wins;  B: 3*2/6 + 3*2/3 = 1 + 2 = 3;  C: 3*1/3 + 5*1/5 = 2.
    games = [("A", "B")] * 2 + [("B", "A")] + [("B", "C")] * 2 + [("C", "B")] + [("A", "C")] * 4 + [("C", "A")]
    fit = bradley_terry(games)
    assert fit.converged
    s = fit.strengths
    assert s["A"] / s["B"] == pytest.approx(2.0, rel=1e-8)
    assert s["B"] / s["C"] == pytest.approx(2.0, rel=1e-8)
    assert math.prod(s.values()) == pytest.approx(1.0)  # geometric mean 1
    assert fit.ratings["A"] - fit.ratings["B"] == pytest.approx(400 * math.log10(2))


def test_bradley_terry_ties_are_half_wins_and_bootstrap_intervals_cover_the_fit():
    fit = bradley_terry([("x", "y", 0.5)] * 4)
    assert fit.strengths["x"] == pytest.approx(fit.strengths["y"])
    games = [("A", "B")] * 8 + [("B", "A")] * 2
    result = bradley_terry_bootstrap(games, n_resamples=100, seed=0)
    low, high = result["intervals"]["A"]
    assert low <= result["fit"].ratings["A"] <= high
    assert result["fit"].ratings["A"] > result["fit"].ratings["B"]


def test_length_bias_warns_when_the_longer_answer_keeps_winning():
    outcomes = [1.0] * 9 + [0.0] * 3
    policy = [50] * 9 + [10] * 3
    baseline = [10] * 12
    result = length_bias(outcomes, policy, baseline, min_decisive=10)
    # The 3 losses are between equal-length answers and are left out; the longer answer won all 9 others.
    assert result["decisive"] == 9 and result["longer_won"] == 9
    assert result["warning"] is False  # fewer than 10 decisive comparisons
    result = length_bias(outcomes, policy, [10] * 9 + [20] * 3)
    assert result["decisive"] == 12 and result["longer_won"] == 12 and result["warning"] is True
