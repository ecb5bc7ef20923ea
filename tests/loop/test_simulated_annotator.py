"""Simulated annotators on the real database: they are users with a simulated membership, judge
through the annotation services (same queue, leases, judgments), follow their rule exactly
without noise, flip exactly the seeded share with noise, and never exceed their target."""

from __future__ import annotations

import pytest

from feedback_site.annotation.models import Judgment, Preference
from feedback_site.core.errors import Invalid
from feedback_site.loop import services
from feedback_site.loop.models import JobStatus, SimulationRun
from feedback_site.projects.models import Membership
from rlhf.simulated import SimulatedAnnotator as Rule

pytestmark = pytest.mark.django_db


def question_pairs(make_pairs, project, n):
    # The answer ending with a question is A for even i and B for odd i.
    def texts(i):
        ask, tell = f"Here is plan {i}. Which day suits you?", f"Here is plan {i}. Enjoy it."
        return (ask, tell) if i % 2 == 0 else (tell, ask)

    return make_pairs(project, n, overlap=1, texts=texts)


def run_for(annotator, target):
    return SimulationRun.objects.create(annotator=annotator, target=target)


def test_rule_annotator_without_noise_labels_every_pair_by_its_rule(project, staff, make_pairs):
    pairs = question_pairs(make_pairs, project, 8)
    sim = services.simulated_annotator_create(project=project, actor=staff, name="Asker", rule="ends_with_question", noise=0.0, seed=5)
    membership = Membership.objects.get(project=project, user=sim.user)
    assert membership.is_simulated and membership.role == "annotator"
    assert not sim.user.has_usable_password()

    run = services.simulation_execute(run_id=run_for(sim, 8).pk)
    assert (run.status, run.done) == (JobStatus.SUCCEEDED, 8)
    judgments = {j.pair_id: j for j in Judgment.objects.filter(annotator=sim.user)}
    assert set(judgments) == {p.pk for p in pairs}
    for i, pair in enumerate(pairs):
        assert judgments[pair.pk].preferred == (Preference.A if i % 2 == 0 else Preference.B)
    # the click was recorded as a person's would be: left/right as shown, mapped back to A/B
    assert {j.choice for j in judgments.values()} <= {"left", "right"}
    # human statistics (quality selectors) leave it out
    from feedback_site.quality.selectors import annotator_rows, human_judgments

    assert not human_judgments(project).filter(annotator=sim.user).exists()
    assert sim.user_id not in {row["annotator_id"] for row in annotator_rows(project)}
    # done: a second delivery of the same task changes nothing
    assert services.simulation_execute(run_id=run.pk) is None
    assert Judgment.objects.filter(annotator=sim.user).count() == 8


def test_noise_flips_exactly_the_seeded_pairs(project, staff, make_pairs):
    pairs = question_pairs(make_pairs, project, 60)
    sim = services.simulated_annotator_create(project=project, actor=staff, name="Noisy", rule="ends_with_question", noise=0.3, seed=11)
    services.simulation_execute(run_id=run_for(sim, 60).pk)
    rule = Rule(rule="ends_with_question", noise=0.3, seed=11)
    flipped = set()
    for i, pair in enumerate(pairs):
        truth = Preference.A if i % 2 == 0 else Preference.B
        if Judgment.objects.get(pair=pair, annotator=sim.user).preferred != truth:
            flipped.add(pair.pk)
    assert flipped == {p.pk for p in pairs if rule.noise_draw(p.pk) < 0.3}
    assert 0.1 < len(flipped) / 60 < 0.5


def test_target_bounds_the_work_and_an_empty_queue_ends_it(project, staff, make_pairs):
    question_pairs(make_pairs, project, 5)
    sim = services.simulated_annotator_create(project=project, actor=staff, name="Short", rule="shorter", noise=0.0)
    assert services.simulation_execute(run_id=run_for(sim, 3).pk).done == 3
    second = services.simulation_execute(run_id=run_for(sim, 10).pk)
    assert second.done == 2 and second.status == JobStatus.SUCCEEDED and "no more pairs" in second.message
    assert Judgment.objects.filter(annotator=sim.user).count() == 5


@pytest.mark.parametrize(
    "kwargs, code",
    [
        ({"rule": "telepathy"}, "bad_rule"),
        ({"noise": 0.9}, "bad_noise"),
        ({"rule": "keyword"}, "bad_keyword"),
        ({"rule": "reward_model"}, "bad_reward_model"),
        ({"name": ""}, "bad_name"),
    ],
)
def test_bad_settings_are_a_400_naming_the_field(project, staff, kwargs, code):
    values = {"name": "X", "rule": "shorter", **kwargs}
    with pytest.raises(Invalid) as error:
        services.simulated_annotator_create(project=project, actor=staff, **values)
    assert error.value.code == code and error.value.status_code == 400


def test_only_staff_create_simulated_annotators(project, annotator):
    from feedback_site.core.errors import Forbidden

    with pytest.raises(Forbidden):
        services.simulated_annotator_create(project=project, actor=annotator, name="Mine", rule="shorter")
