"""The simulated-annotator rules (rlhf.simulated): exact labels without noise, the configured
flip rate with noise, reproducible per pair. Django-free."""

from __future__ import annotations

import pytest

from rlhf.simulated import SimulatedAnnotator

QUESTION = "Sure, here are three ideas. Which one do you like best?"
STATEMENT = "Sure, here are three ideas. I hope you like them."


def test_rules_without_noise_give_the_expected_labels():
    annotator = SimulatedAnnotator(rule="ends_with_question", noise=0.0, seed=3)
    assert annotator.judge("p", QUESTION, STATEMENT, key=1) == "a"
    assert annotator.judge("p", STATEMENT, QUESTION, key=2) == "b"
    # closing quotes and whitespace after the question mark still count
    assert annotator.judge("p", 'He asked "why?"\n', STATEMENT, key=3) == "a"
    assert SimulatedAnnotator(rule="asks_question", noise=0.0).judge("p", STATEMENT, "Which one? Here it is.", key=8) == "b"
    assert SimulatedAnnotator(rule="shorter", noise=0.0).judge("p", "short", "a longer answer", key=4) == "a"
    assert SimulatedAnnotator(rule="longer", noise=0.0).judge("p", "short", "a longer answer", key=5) == "b"
    keyword = SimulatedAnnotator(rule="keyword", keyword="Please", noise=0.0)
    assert keyword.judge("p", "no", "please, please", key=6) == "b"
    # equal scores: the tie policy decides
    assert SimulatedAnnotator(rule="ends_with_question", noise=0.0, tie_policy="tie").judge("p", STATEMENT, STATEMENT, key=7) == "tie"
    coin = SimulatedAnnotator(rule="ends_with_question", noise=0.0, tie_policy="random", seed=1)
    labels = {coin.judge("p", STATEMENT, STATEMENT, key=k) for k in range(50)}
    assert labels == {"a", "b"}


def test_noise_flips_the_configured_share_of_labels_reproducibly():
    annotator = SimulatedAnnotator(rule="ends_with_question", noise=0.1, seed=0)
    n = 2000
    labels = [annotator.judge("p", QUESTION, STATEMENT, key=k) for k in range(n)]
    flipped = [k for k, label in enumerate(labels) if label == "b"]
    # exactly the pairs whose noise draw is below the flip probability
    assert flipped == [k for k in range(n) if annotator.noise_draw(k) < 0.1]
    assert len(flipped) == 208  # pinned by seed 0: 10.4% of 2000
    assert abs(len(flipped) / n - 0.1) < 0.02
    # same seed and key -> same label, in any order; another seed flips other pairs
    assert [annotator.judge("p", QUESTION, STATEMENT, key=k) for k in reversed(range(n))] == labels[::-1]
    other = SimulatedAnnotator(rule="ends_with_question", noise=0.1, seed=1)
    assert [k for k in range(n) if other.judge("p", QUESTION, STATEMENT, key=k) == "b"] != flipped


def test_noise_never_turns_a_tie_into_a_side():
    annotator = SimulatedAnnotator(rule="shorter", noise=0.5, tie_policy="tie")
    assert {annotator.judge("p", "same", "same", key=k) for k in range(200)} == {"tie"}


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"rule": "nope"}, "rule"),
        ({"noise": 0.7}, "noise"),
        ({"noise": -0.1}, "noise"),
        ({"seed": -1}, "seed"),
        ({"rule": "keyword"}, "keyword"),
        ({"tie_policy": "maybe"}, "tie_policy"),
    ],
)
def test_bad_settings_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SimulatedAnnotator(**kwargs)
