"""Statistics against published and hand-computed values."""

from __future__ import annotations

import random

import pytest

from feedback_site.quality import stats

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: nominal data,
# 4 observers, 12 units, missing values. Published result: alpha = 0.743.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def test_krippendorff_alpha_matches_the_published_nominal_example():
    units = stats.reliability_to_units(KRIPPENDORFF_2011)
    alpha = stats.krippendorff_alpha(units, categories=[1, 2, 3, 4, 5])
    assert round(alpha, 3) == 0.743
    # Raw agreement by hand, unit by unit (agreeing ordered pairs / ordered pairs):
    # 6/6, 6/12, 12/12, 12/12, 12/12, 0/12, 12/12, 6/12, 12/12, 6/6, 2/2 (unit 12 has one value) = 86/110.
    assert stats.pairwise_agreement(units) == pytest.approx(86 / 110)


def test_alpha_on_preference_labels_treats_tie_and_both_bad_as_their_own_categories():
    # Hand computation (nominal alpha = 1 - (n-1) * sum_u sum_{c!=k} o_ck / (sum_c n_c(n - n_c))):
    # units: [a,a], [b,b], [a,tie], [both_bad,both_bad]; n = 8 pairable values,
    # n_a=3, n_b=2, n_tie=1, n_bb=2; observed disagreement: unit [a,tie] contributes o_a,tie = o_tie,a = 1/(2-1) = 1 -> D_o = 2/8.
    # Expected: sum_c n_c (n - n_c) = 3*5 + 2*6 + 1*7 + 2*6 = 46 -> D_e = 46 / (8*7).
    units = [["a", "a"], ["b", "b"], ["a", "tie"], ["both_bad", "both_bad"]]
    expected = 1 - (2 / 8) / (46 / 56)
    assert stats.krippendorff_alpha(units) == pytest.approx(expected)
    assert stats.pairwise_agreement(units) == pytest.approx(6 / 8)
    # "tie" against "a" is a disagreement, "tie" against "tie" an agreement.
    assert stats.pairwise_agreement([["tie", "a"]]) == 0
    assert stats.pairwise_agreement([["tie", "tie"]]) == 1


def test_pairwise_agreement_ignores_single_judgments_and_counts_ordered_pairs():
    # [a,a,b]: 6 ordered pairs, 2 agree; [b] ignored; [a,b]: 2 pairs, 0 agree -> 2/8.
    assert stats.pairwise_agreement([["a", "a", "b"], ["b"], ["a", "b"]]) == pytest.approx(2 / 8)
    assert stats.pairwise_agreement([["a"]]) is None
    assert stats.krippendorff_alpha([["a", "a"], ["a", "a"]]) is None  # no variation: undefined


def test_annotator_agreement_with_others():
    rows = [
        (1, "x", "a"),
        (1, "y", "a"),
        (1, "z", "b"),
        (2, "x", "b"),
        (2, "y", "tie"),
        (3, "x", "a"),
    ]
    got = stats.annotator_agreement(rows)
    # x: unit 1 -> others y(a) agree, z(b) not; unit 2 -> y(tie) not => 1 of 3.
    assert got["x"] == (1, 3)
    assert got["y"] == (1, 3)
    assert got["z"] == (0, 2)


@pytest.mark.parametrize(
    ("left", "right", "p_value", "flagged"),
    [
        (9, 1, 22 / 1024, True),  # 2 * (C(10,9) + C(10,10)) / 2^10
        (5, 5, 1.0, False),
        (7, 3, 2 * (120 + 45 + 10 + 1) / 1024, False),  # 0.34375
        (0, 6, 2 / 64, True),  # 0.03125
    ],
)
def test_position_bias_binomial_test_against_hand_values(left, right, p_value, flagged):
    bias = stats.position_bias(left, right)
    assert bias.p_value == pytest.approx(p_value)
    assert bias.left_rate == pytest.approx(left / (left + right))
    assert bias.flagged is flagged


def test_position_bias_threshold_is_configurable_and_empty_is_unflagged():
    assert stats.position_bias(7, 3, alpha=0.5).flagged is True
    empty = stats.position_bias(0, 0)
    assert empty.left_rate is None and empty.p_value is None and not empty.flagged


def test_median_and_weighted_vote():
    assert stats.median([3, 1, 2]) == 2
    assert stats.median([4, 1, 2, 3]) == 2.5
    assert stats.median([]) is None
    assert stats.weighted_vote([("a", 0.2), ("a", 0.2), ("b", 0.9)]) == "b"
    assert stats.weighted_vote([("a", 0.5), ("b", 0.5)]) is None
    assert stats.gold_weight(9, 10) == pytest.approx(10 / 12)
    assert stats.gold_weight(0, 0) == 0.5


def test_dawid_skene_trusts_annotators_who_agree_with_the_rest_over_a_wrong_majority():
    rng = random.Random(0)
    truth = {i: rng.choice("ab") for i in range(40)}
    flip = {"a": "b", "b": "a"}
    rows = []
    for unit in range(30):  # everyone judges: three always right, two guess at random
        rows += [(unit, g, truth[unit]) for g in ("g1", "g2", "g3")]
        rows += [(unit, b, rng.choice("ab")) for b in ("bad1", "bad2")]
    for unit in range(30, 40):  # the two guessers outvote one reliable annotator
        rows += [(unit, "g1", truth[unit]), (unit, "bad1", flip[truth[unit]]), (unit, "bad2", flip[truth[unit]])]
    posterior, confusion = stats.dawid_skene(rows)
    estimate = {unit: stats.map_label(p) for unit, p in posterior.items()}
    assert all(estimate[u] == truth[u] for u in range(40))
    majority = {u: stats.weighted_vote([(label, 1) for uu, _, label in rows if uu == u]) for u in range(30, 40)}
    assert all(majority[u] != truth[u] for u in range(30, 40))
    # g1's estimated confusion matrix is close to the identity on a and b.
    assert confusion["g1"][0, 0] > 0.9 and confusion["g1"][1, 1] > 0.9
    assert abs(confusion["bad1"][0, 0] - 0.5) < 0.35


def test_matrix_forms_equal_the_unit_forms_on_random_data():
    from feedback_site.quality.selectors import agreement_summary, annotator_agreement_fast

    rng = random.Random(3)
    rows = []
    for unit in range(300):
        for annotator in rng.sample(range(12), rng.randint(1, 4)):
            rows.append((unit, annotator, rng.choice(stats.LABELS), 20000 + unit // 40))
    units = stats.group_units((u, a, label) for u, a, label, _ in rows)
    summary = agreement_summary(rows, bucket="day")
    assert summary["pairwise_agreement"] == pytest.approx(stats.pairwise_agreement(units.values()))
    assert summary["krippendorff_alpha"] == pytest.approx(stats.krippendorff_alpha(list(units.values())))
    assert summary["overlapping_pairs"] == sum(1 for labels in units.values() if len(labels) >= 2)
    assert sum(b["pairs"] for b in summary["over_time"]) == summary["overlapping_pairs"]
    assert annotator_agreement_fast(rows) == stats.annotator_agreement((u, a, label) for u, a, label, _ in rows)
