"""The ranking rules (rlhf.rankings): validation names the problem, one ranking of K answers gives
every pair across tiers and none within one, several rankings decide each pair by majority, the
weights make each ranked answer set count as one, and agreement is Kendall's tau-b and ordinal alpha."""

from __future__ import annotations

import math

import pytest

from rlhf.rankings import ExpandedPair, expand, kendall_tau, ordinal_alpha, positions, ranking_pairs, validate_tiers


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ([], "non-empty list of tiers"),
        ([[1], []], r"order\[1\]: must be a non-empty list"),
        ([[1, 2], [2, 3]], "answer 2 is ranked more than once"),
        ([[1], [2], [9]], "answer 9 was not shown"),
        ([[1], [2]], "answer 3 is missing"),
        ("123", "non-empty list of tiers"),
    ],
)
def test_bad_rankings_name_the_problem(tiers, message):
    with pytest.raises(ValueError, match=message):
        validate_tiers(tiers, shown=[1, 2, 3])


def test_a_full_order_of_four_gives_all_six_pairs_best_first():
    tiers = [[3], [1], [4], [2]]
    validate_tiers(tiers, shown=[1, 2, 3, 4])
    assert ranking_pairs(tiers) == [(3, 1), (3, 4), (3, 2), (1, 4), (1, 2), (4, 2)]
    assert positions(tiers) == {3: 0, 1: 1, 4: 2, 2: 3}


def test_ties_give_no_pair_and_all_unacceptable_gives_none():
    tiers = [[3], [1, 4], [2]]
    assert sorted(ranking_pairs(tiers)) == sorted([(3, 1), (3, 4), (3, 2), (1, 2), (4, 2)])
    assert ranking_pairs(tiers, all_unacceptable=True) == []
    assert ranking_pairs([[1, 2, 3]]) == []


def test_one_ranking_expands_to_pairs_weighted_to_one_in_total():
    pairs = expand([([[3], [1, 4], [2]], False)])
    assert len(pairs) == 5 and all(p.weight == pytest.approx(0.2) for p in pairs)
    assert math.isclose(sum(p.weight for p in pairs), 1.0)
    assert ExpandedPair(chosen=3, rejected=2, votes_for=1, votes_against=0, weight=0.2) in pairs


def test_several_rankings_decide_each_pair_by_majority_and_drop_even_votes():
    rankings = [([[1], [2], [3]], False), ([[1], [3], [2]], False), ([[2], [1], [3]], False), ([[1, 2, 3]], False)]
    pairs = {(p.chosen, p.rejected): (p.votes_for, p.votes_against) for p in expand(rankings)}
    # 1 over 2: two rankings to one; 1 over 3: three to none; 2 vs 3: two to one.
    assert pairs == {(1, 2): (2, 1), (1, 3): (3, 0), (2, 3): (2, 1)}
    even = expand([([[1], [2]], False), ([[2], [1]], False)])
    assert even == []
    assert expand([([[1], [2]], True)]) == []


def test_kendall_tau_b_counts_ties():
    assert kendall_tau([[1], [2], [3], [4]], [[1], [2], [3], [4]]) == pytest.approx(1.0)
    assert kendall_tau([[1], [2], [3], [4]], [[4], [3], [2], [1]]) == pytest.approx(-1.0)
    # scipy's tau-b on positions (0,1,2,3) vs (0,0,1,2): 5 concordant, 0 discordant, one tie in y.
    assert kendall_tau([[1], [2], [3], [4]], [[1, 2], [3], [4]]) == pytest.approx(5 / math.sqrt(6 * 5))
    assert kendall_tau([[1, 2, 3]], [[1], [2], [3]]) is None
    with pytest.raises(ValueError, match="do not rank the same answers"):
        kendall_tau([[1], [2]], [[1], [3]])


def test_ordinal_alpha_is_one_for_identical_rankings_and_lower_for_reversed_ones():
    same = [[[[1], [2], [3]], [[1], [2], [3]]], [[[4], [5], [6]], [[4], [5], [6]]]]
    assert ordinal_alpha(same) == pytest.approx(1.0)
    opposite = [[[[1], [2], [3]], [[3], [2], [1]]], [[[4], [5], [6]], [[6], [5], [4]]]]
    assert ordinal_alpha(opposite) < 0
    assert ordinal_alpha([[[[1], [2], [3]]]]) is None  # one ranking per set: nothing to agree on
