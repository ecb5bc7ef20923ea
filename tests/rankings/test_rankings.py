"""K-way rankings as a task kind of the one queue (its scenario suite is
tests/annotation/test_queue_spec.py, "ranking-orm"): the stored display order, ties, "all
unacceptable", bad ranks named and nothing stored, gold rankings and the pause, dynamic overlap on
the whole ranking, generation runs that make ranking tasks, the API, and the quality statistics."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feedback_site.annotation.models import Response
from feedback_site.core.errors import Invalid
from feedback_site.projects.models import Membership
from feedback_site.quality.ranking_stats import display_position_bias, ranking_statistics
from feedback_site.rankings import services
from feedback_site.rankings.models import Ranking, RankingAssignment, RankingTask, shown_order

from .helpers import make_answer_set, rank_next, ranks_for

pytestmark = pytest.mark.django_db

ANSWERS = ["Paris.", "It is Paris, on the Seine.", "Lyon.", "I don't know."]


@pytest.fixture
def people(project, make_user, add_member):
    users = [make_user(f"ranker-{i}") for i in range(3)]
    for user in users:
        add_member(project, user, "annotator")
    return users


@pytest.fixture
def answer_set(project, site_admin):
    ids = make_answer_set(project, "What is the capital of France?", ANSWERS)
    assert services.tasks_create(project=project, actor=site_admin, answer_sets=[ids], overlap=2) == 1
    return ids


def test_a_ranking_with_a_tie_is_stored_with_the_order_shown(project, people, answer_set):
    paris, seine, lyon, unknown = answer_set
    lease = services.next_task(project=project, annotator=people[0])
    shown = [a["response_id"] for a in services.payload(lease)["answers"]]
    assert sorted(shown) == sorted(answer_set) and shown == shown_order(answer_set, lease.display_seed)
    again = services.next_task(project=project, annotator=people[0])  # a reload: the same lease, the same order
    assert again.pk == lease.pk and [a["response_id"] for a in services.payload(again)["answers"]] == shown

    ranks = [
        {"response_id": seine, "rank": 1},
        {"response_id": paris, "rank": 2},
        {"response_id": lyon, "rank": 3},
        {"response_id": unknown, "rank": 3},
    ]
    ranking, created = services.submit(
        assignment_id=lease.pk, annotator=people[0], ranks=ranks, strength="clear", rationale=" Seine adds detail. "
    )
    assert created
    assert ranking.tiers == [[seine], [paris], sorted([lyon, unknown])]
    assert ranking.order_key == f"{seine}>{paris}>{min(lyon, unknown)}={max(lyon, unknown)}"
    assert ranking.order_shown == shown and ranking.strength == "clear" and ranking.rationale == "Seine adds detail."
    repeat, created_again = services.submit(assignment_id=lease.pk, annotator=people[0], ranks=list(reversed(ranks)))
    assert not created_again and repeat.pk == ranking.pk and Ranking.objects.count() == 1


@pytest.mark.parametrize(
    "ranks, field",
    [
        (
            lambda ids: [{"response_id": ids[0], "rank": 1}, {"response_id": ids[1], "rank": 2}, {"response_id": ids[2], "rank": 3}],
            "ranks: answer",
        ),
        (lambda ids: [{"response_id": i, "rank": 1} for i in ids] + [{"response_id": ids[0], "rank": 2}], "ranks[4].response_id"),
        (lambda ids: [{"response_id": i, "rank": r} for i, r in zip(ids, [1, 2, 3, 5])], "ranks[3].rank"),
        (lambda ids: [{"response_id": i, "rank": r} for i, r in zip(ids, [0, 1, 2, 3])], "ranks[0].rank"),
        (lambda ids: [{"response_id": i, "rank": r} for i, r in zip(ids, [1, 2, 3, "4"])], "ranks[3].rank"),
        (lambda ids: [{"response_id": 10**9, "rank": 1}], "ranks[0].response_id"),
        (lambda ids: [{"response_id": ids[0]}], "ranks[0]"),
        (lambda ids: None, "ranks"),
    ],
    ids=["missing", "repeated", "over", "zero", "text", "not-shown", "no-rank", "absent"],
)
def test_bad_ranks_are_refused_naming_the_field_and_nothing_is_stored(project, people, answer_set, ranks, field):
    lease = services.next_task(project=project, annotator=people[0])
    with pytest.raises(Invalid) as raised:
        services.submit(assignment_id=lease.pk, annotator=people[0], ranks=ranks(answer_set))
    assert raised.value.message.startswith(field), raised.value.message
    assert Ranking.objects.count() == 0 and RankingTask.objects.get().submitted_count == 0
    assert RankingAssignment.objects.get(pk=lease.pk).status == "leased"


def test_all_unacceptable_needs_no_ranks_and_prefers_nothing(project, people, answer_set):
    lease = services.next_task(project=project, annotator=people[0])
    ranking, _ = services.submit(assignment_id=lease.pk, annotator=people[0], all_unacceptable=True)
    assert ranking.all_unacceptable and ranking.tiers == [sorted(answer_set)] and ranking.order_key == "unacceptable"
    with pytest.raises(Invalid, match="all_unacceptable"):
        services.submit(
            assignment_id=services.next_task(project=project, annotator=people[1]).pk, annotator=people[1], all_unacceptable="yes"
        )


def test_dynamic_overlap_compares_whole_rankings(project, people, site_admin):
    project.dynamic_overlap = True
    project.save(update_fields=["dynamic_overlap"])
    agreed = make_answer_set(project, "Agree?", ["a1", "a2", "a3"])
    split = make_answer_set(project, "Split?", ["b1", "b2", "b3"])
    services.tasks_create(project=project, actor=site_admin, answer_sets=[agreed, split], overlap=3)
    forward = lambda ids: [[pk] for pk in sorted(ids)]  # noqa: E731
    backward = lambda ids: [[pk] for pk in sorted(ids, reverse=True)]  # noqa: E731
    for person in people[:2]:
        rank_next(project, person, forward)
    first = RankingTask.objects.get(response_ids=agreed)
    assert first.is_complete and first.overlap == 2  # two equal rankings: done
    rank_next(project, people[0], forward)
    rank_next(project, people[1], backward)
    second = RankingTask.objects.get(response_ids=split)
    assert not second.is_complete and second.overlap == 3  # they differ: a third ranking is asked for
    rank_next(project, people[2], forward)
    second.refresh_from_db()
    assert second.is_complete and second.submitted_count == 3


def test_gold_rankings_are_scored_and_low_accuracy_pauses(project, people, site_admin):
    project.gold_rate = 1.0
    project.gold_min_judged = 2
    project.gold_min_accuracy = 0.6
    project.save(update_fields=["gold_rate", "gold_min_judged", "gold_min_accuracy"])
    sets = [make_answer_set(project, f"Gold {i}?", [f"best {i}", f"middle {i}", f"worst {i}"]) for i in range(3)]
    for ids in sets:
        RankingTask.objects.create(
            project=project,
            prompt_id=Response.objects.get(pk=ids[0]).prompt_id,
            response_ids=ids,
            answer_key=",".join(map(str, sorted(ids))),
            overlap=0,
            is_complete=True,
            is_gold=True,
            gold_order=[[ids[0]], [ids[1]], [ids[2]]],
        )
    good, bad = people[0], people[1]
    for _ in range(2):
        # A tie between the two lower answers reverses nothing: still correct.
        ranking = rank_next(project, good, lambda ids: [[min(ids)], sorted(ids)[1:]])
        assert ranking.gold_correct is True
    assert services.gold_accuracy_of(project.pk, good.pk) == (2, 2)
    for _ in range(2):
        ranking = rank_next(project, bad, lambda ids: [[pk] for pk in sorted(ids, reverse=True)])
        assert ranking.gold_correct is False
    membership = Membership.objects.get(project=project, user=bad)
    assert membership.paused_at is not None and "0/2" in membership.pause_reason
    assert Membership.objects.get(project=project, user=good).paused_at is None


def test_generation_runs_make_one_ranking_task_per_prompt(project, ml_staff, monkeypatch):
    from feedback_site.annotation.models import Prompt
    from feedback_site.generation import services as generation
    from feedback_site.generation.models import GenerationRun

    monkeypatch.setattr(generation, "enqueue", lambda spec, *args, **options: "task-id")  # the worker path has its own tests
    prompts = [Prompt.objects.create(project=project, text=f"Question {i}?") for i in range(2)]
    for k in (2, 10):
        with pytest.raises(Invalid, match="k: a ranking task shows 3 to 9 answers"):
            generation.generation_launch(project=project, actor=ml_staff, k=k, pairing="ranking")
    assert GenerationRun.objects.count() == 0
    run = generation.generation_launch(project=project, actor=ml_staff, k=4, pairing="ranking")
    generation.generation_mark_running(run_id=run.pk)
    answers = {prompts[0].pk: ["one", "two", "three", "two"], prompts[1].pk: ["x", "x", "y", "z"]}
    run = generation.generation_complete(run_id=run.pk, responses_by_prompt=answers)
    assert run.status == "succeeded" and run.pair_count == 0 and "2 ranking tasks" in run.message
    tasks = list(RankingTask.objects.filter(generation_run=run).order_by("id"))
    texts = [[Response.objects.get(pk=pk).text for pk in task.response_ids] for task in tasks]
    assert texts == [["one", "two", "three"], ["x", "y", "z"]]  # a repeated sample is one answer
    assert all(task.overlap == project.overlap and not task.is_complete for task in tasks)


def test_the_api_ranks_and_names_bad_fields(project, people, answer_set):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=people[0])[0].key}")
    leased = client.post(f"/api/v1/projects/{project.pk}/rankings/next")
    assert leased.status_code == 200 and len(leased.json()["answers"]) == 4
    assignment = leased.json()["assignment_id"]
    order = [[a["response_id"]] for a in leased.json()["answers"]]
    bad = client.post(f"/api/v1/ranking-assignments/{assignment}/submit", {"ranks": ranks_for(order)[:3]}, format="json")
    assert bad.status_code == 400 and bad.json()["detail"].startswith("ranks: answer")
    typo = client.post(f"/api/v1/ranking-assignments/{assignment}/submit", {"rankz": []}, format="json")
    assert typo.status_code == 400 and "rankz" in typo.json()["detail"]
    assert Ranking.objects.count() == 0
    done = client.post(f"/api/v1/ranking-assignments/{assignment}/submit", {"ranks": ranks_for(order)}, format="json")
    assert done.status_code == 201 and done.json()["order"] == order
    again = client.post(f"/api/v1/ranking-assignments/{assignment}/submit", {"ranks": ranks_for(order)}, format="json")
    assert again.status_code == 200 and again.json()["ranking_id"] == done.json()["ranking_id"]
    progress = client.get(f"/api/v1/projects/{project.pk}/rankings/progress").json()
    assert progress == {"ranked": 1, "skipped": 0, "remaining_in_project": 1}


def test_agreement_and_position_bias_statistics(project, people, site_admin):
    sets = [make_answer_set(project, f"Q{i}?", [f"a{i}", f"b{i}", f"c{i}", f"d{i}"]) for i in range(6)]
    services.tasks_create(project=project, actor=site_admin, answer_sets=sets, overlap=2)
    by_id = lambda ids: [[pk] for pk in sorted(ids)]  # noqa: E731
    for _ in range(6):
        rank_next(project, people[0], by_id)
        # The second annotator ranks answers in the order shown: a position-biased annotator.
        lease = services.next_task(project=project, annotator=people[1])
        services.submit(assignment_id=lease.pk, annotator=people[1], ranks=ranks_for([[pk] for pk in lease.order_shown]))
    stats = ranking_statistics(project)
    assert stats["rankings"] == 12 and stats["shared_tasks"] == 6
    assert stats["mean_tau"] is not None and -1 <= stats["mean_tau"] <= 1 and stats["alpha"] is not None
    rows = {row["annotator"]: row for row in stats["annotators"]}
    biased = rows[people[1].username]
    assert biased["position_rho"] == pytest.approx(1.0) and biased["position_biased"]
    assert not rows[people[0].username]["position_biased"]
    # Identical rankings agree perfectly; reversed ones disagree perfectly.
    assert display_position_bias([([1, 2, 3], [[3], [2], [1]])])[0] == pytest.approx(-1.0)
