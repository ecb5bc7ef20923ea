"""The annotation queue's guarantees, on the real PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from feedback_site.annotation import services
from feedback_site.annotation.models import Assignment, AssignmentStatus, Judgment, Pair
from feedback_site.core.errors import Conflict, Invalid, NotFound

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("queue_path")]


def test_next_leases_a_pair_and_a_reload_gets_the_same_one(project, annotator, make_pairs):
    make_pairs(project, 3)
    first = services.assignment_next(project=project, annotator=annotator)
    again = services.assignment_next(project=project, annotator=annotator)
    assert first is not None and not first.resumed
    assert again.resumed and again.assignment.pk == first.assignment.pk
    assert Assignment.objects.filter(annotator=annotator).count() == 1


def test_non_member_cannot_lease(project, make_user, make_pairs):
    make_pairs(project, 1)
    with pytest.raises(NotFound):
        services.assignment_next(project=project, annotator=make_user("stranger"))


def test_pair_is_never_leased_beyond_its_overlap(make_project, make_user, add_member, make_pairs):
    project = make_project(overlap=2)
    [pair] = make_pairs(project, 1)
    users = [make_user(f"a{i}") for i in range(3)]
    for user in users:
        add_member(project, user, "annotator")
    got = [services.assignment_next(project=project, annotator=u) for u in users]
    assert [g is not None for g in got] == [True, True, False]
    assert {g.assignment.pair_id for g in got[:2]} == {pair.pk}


def test_annotator_never_sees_the_same_pair_twice(project, annotator, make_pairs):
    make_pairs(project, 2)
    seen = []
    while (leased := services.assignment_next(project=project, annotator=annotator)) is not None:
        seen.append(leased.assignment.pair_id)
        services.judgment_submit(assignment_id=leased.assignment.pk, annotator=annotator, choice="left")
    assert len(seen) == len(set(seen)) == 2


def test_submit_is_idempotent_and_maps_display_order_to_a_b(project, annotator, make_pairs):
    make_pairs(project, 1)
    leased = services.assignment_next(project=project, annotator=annotator).assignment
    judgment, created = services.judgment_submit(assignment_id=leased.pk, annotator=annotator, choice="left", time_spent_ms=1200)
    again, created_again = services.judgment_submit(assignment_id=leased.pk, annotator=annotator, choice="right")
    assert created and not created_again and again.pk == judgment.pk
    assert Judgment.objects.count() == 1
    assert judgment.preferred == ("b" if leased.swapped else "a")
    assert judgment.swapped == leased.swapped and judgment.time_spent_ms == 1200
    pair = Pair.objects.get()
    assert pair.judgment_count == 1 and pair.is_complete


def test_left_right_order_is_randomised_per_assignment(make_project, make_user, add_member, make_pairs):
    project = make_project(overlap=1)
    make_pairs(project, 60)
    user = make_user("many")
    add_member(project, user, "annotator")
    swaps = []
    for _ in range(60):
        leased = services.assignment_next(project=project, annotator=user).assignment
        swaps.append(leased.swapped)
        services.assignment_skip(assignment_id=leased.pk, annotator=user)
    # Both orders occur (a fair coin gives all-equal with probability 2 * 2**-60).
    assert 0 < sum(swaps) < 60


def test_criteria_votes_are_stored_in_canonical_terms(make_project, make_user, add_member, make_pairs):
    project = make_project(criteria=["helpful", "harmless"])
    make_pairs(project, 1)
    user = make_user("c")
    add_member(project, user, "annotator")
    leased = services.assignment_next(project=project, annotator=user).assignment
    judgment, _ = services.judgment_submit(
        assignment_id=leased.pk, annotator=user, choice="right", strength="clear",
        criteria={"helpful": "right", "harmless": "tie"}, rationale="more specific",
    )
    right = "a" if leased.swapped else "b"
    assert judgment.criteria == {"helpful": right, "harmless": "tie"}
    assert judgment.strength == "clear" and judgment.rationale == "more specific"


@pytest.mark.parametrize(
    "kwargs, phrase",
    [
        ({"choice": "middle"}, "choice must be one of"),
        ({"choice": "tie", "strength": "much"}, "strength only applies"),
        ({"choice": "left", "strength": "huge"}, "strength must be one of"),
        ({"choice": "left", "criteria": {"funny": "left"}}, "unknown criterion"),
        ({"choice": "left", "time_spent_ms": -5}, "time_spent_ms"),
    ],
)
def test_bad_submissions_are_refused_and_store_nothing(project, annotator, make_pairs, kwargs, phrase):
    make_pairs(project, 1)
    leased = services.assignment_next(project=project, annotator=annotator).assignment
    with pytest.raises(Invalid, match=phrase):
        services.judgment_submit(assignment_id=leased.pk, annotator=annotator, **kwargs)
    assert Judgment.objects.count() == 0
    assert Assignment.objects.get().status == AssignmentStatus.LEASED


def test_someone_elses_assignment_is_not_found(project, annotator, make_user, add_member, make_pairs):
    make_pairs(project, 1)
    other = make_user("other")
    add_member(project, other, "annotator")
    leased = services.assignment_next(project=project, annotator=annotator).assignment
    with pytest.raises(NotFound):
        services.judgment_submit(assignment_id=leased.pk, annotator=other, choice="left")


def test_skip_frees_the_slot_and_the_pair_never_returns(make_project, make_user, add_member, make_pairs):
    project = make_project(overlap=1)
    [pair] = make_pairs(project, 1)
    first, second = make_user("s1"), make_user("s2")
    add_member(project, first, "annotator")
    add_member(project, second, "annotator")
    leased = services.assignment_next(project=project, annotator=first).assignment
    assert services.assignment_next(project=project, annotator=second) is None  # slot held
    services.assignment_skip(assignment_id=leased.pk, annotator=first)
    services.assignment_skip(assignment_id=leased.pk, annotator=first)  # idempotent
    assert services.assignment_next(project=project, annotator=first) is None
    assert services.assignment_next(project=project, annotator=second).assignment.pair_id == pair.pk
    with pytest.raises(Conflict, match="skipped"):
        services.judgment_submit(assignment_id=leased.pk, annotator=first, choice="left")


def test_expired_lease_frees_the_slot_and_late_submit_is_kept_if_still_needed(make_project, make_user, add_member, make_pairs):
    project = make_project(overlap=1)
    make_pairs(project, 1)
    late, other = make_user("late"), make_user("other")
    add_member(project, late, "annotator")
    add_member(project, other, "annotator")
    past = timezone.now() - timedelta(seconds=project.lease_seconds + 5)
    leased = services.assignment_next(project=project, annotator=late, now=past).assignment
    # The lease has expired: the pair is free again, but nobody has judged it yet, so the late
    # answer still counts.
    judgment, created = services.judgment_submit(assignment_id=leased.pk, annotator=late, choice="left")
    assert created and judgment.accepted_after_expiry
    assert services.assignment_next(project=project, annotator=other) is None


def test_late_submit_is_refused_when_the_pair_went_to_someone_else(make_project, make_user, add_member, make_pairs):
    project = make_project(overlap=1)
    make_pairs(project, 1)
    late, other = make_user("late"), make_user("other")
    add_member(project, late, "annotator")
    add_member(project, other, "annotator")
    past = timezone.now() - timedelta(seconds=project.lease_seconds + 5)
    stale = services.assignment_next(project=project, annotator=late, now=past).assignment
    fresh = services.assignment_next(project=project, annotator=other).assignment
    assert fresh.pair_id == stale.pair_id
    with pytest.raises(Conflict, match="expired"):
        services.judgment_submit(assignment_id=stale.pk, annotator=late, choice="left")
    with pytest.raises(Conflict, match="expired"):
        services.assignment_renew(assignment_id=stale.pk, annotator=late)
    services.judgment_submit(assignment_id=fresh.pk, annotator=other, choice="right")
    assert Judgment.objects.count() == 1


def test_renew_pushes_the_expiry_forward(project, annotator, make_pairs):
    make_pairs(project, 1)
    start = timezone.now()
    leased = services.assignment_next(project=project, annotator=annotator, now=start).assignment
    renewed = services.assignment_renew(assignment_id=leased.pk, annotator=annotator, now=start + timedelta(seconds=60))
    assert renewed.expires_at == start + timedelta(seconds=60 + project.lease_seconds)


def test_priority_is_served_first(project, annotator, make_pairs):
    low, high = make_pairs(project, 2)
    Pair.objects.filter(pk=high.pk).update(priority=5)
    assert services.assignment_next(project=project, annotator=annotator).assignment.pair_id == high.pk


def _run_threads(count: int, target) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrapper(i):
        try:
            target(i)
        except BaseException as error:  # noqa: BLE001 - collected and asserted on by the test
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapper, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


@pytest.mark.django_db(transaction=True)
def test_many_concurrent_annotators_never_exceed_overlap_or_lose_judgments(make_project, make_user, add_member, make_pairs):
    project = make_project(overlap=3)
    make_pairs(project, 40)
    users = [make_user(f"c{i}") for i in range(16)]
    for user in users:
        add_member(project, user, "annotator")
    acknowledged: list[int] = []
    lock = threading.Lock()

    def annotate(i):
        user = users[i]
        while (leased := services.assignment_next(project=project, annotator=user)) is not None:
            judgment, created = services.judgment_submit(
                assignment_id=leased.assignment.pk, annotator=user, choice=("left", "right", "tie")[i % 3]
            )
            assert created
            with lock:
                acknowledged.append(judgment.pk)

    assert _run_threads(len(users), annotate) == []
    assert len(acknowledged) == len(set(acknowledged)) == 40 * 3
    assert set(Judgment.objects.values_list("pk", flat=True)) == set(acknowledged)
    per_pair = dict(Judgment.objects.values("pair").annotate(n=Count("id")).values_list("pair", "n"))
    assert set(per_pair.values()) == {3}
    assert all(p.judgment_count == 3 and p.is_complete for p in Pair.objects.all())
    duplicates = Judgment.objects.values("pair", "annotator").annotate(n=Count("id")).filter(n__gt=1)
    assert not duplicates.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_repeats_of_one_submit_store_one_judgment(project, annotator, make_pairs):
    make_pairs(project, 1)
    leased = services.assignment_next(project=project, annotator=annotator).assignment
    results: list[bool] = []

    def submit(_):
        _, created = services.judgment_submit(assignment_id=leased.pk, annotator=annotator, choice="left")
        results.append(created)

    assert _run_threads(8, submit) == []
    assert sorted(results) == [False] * 7 + [True]
    assert Judgment.objects.count() == 1
