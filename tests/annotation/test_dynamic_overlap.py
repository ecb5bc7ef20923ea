"""Dynamic overlap: a pair first gets two judgments; a third only when those two disagree; never a
fourth. On PostgreSQL, through both the SQL and the ORM implementation, and under concurrency."""

from __future__ import annotations

import random
import threading
import time

import pytest
from django.db import connection
from django.db.models import Count

from feedback_site.annotation import services
from feedback_site.annotation.models import Judgment, Pair

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("queue_path")]


def _dynamic_project(make_project, overlap: int = 3):
    project = make_project("Dynamic", overlap=overlap)
    project.dynamic_overlap = True
    project.save(update_fields=["dynamic_overlap"])
    return project


@pytest.fixture
def annotators(make_user, add_member):
    def make(project, n):
        users = [make_user(f"d{i}") for i in range(n)]
        for user in users:
            add_member(project, user, "annotator")
        return users

    return make


def _judge(project, user, preferred: str):
    """Lease the next pair and judge it so that the stored preference is `preferred`."""
    leased = services.assignment_next(project=project, annotator=user)
    if leased is None:
        return None
    swapped = leased.assignment.swapped
    choice = {"a": "right" if swapped else "left", "b": "left" if swapped else "right"}.get(preferred, preferred)
    judgment, created = services.judgment_submit(assignment_id=leased.assignment.pk, annotator=user, choice=choice)
    assert created and judgment.preferred == preferred
    return judgment


@pytest.mark.parametrize("overlap", [1, 3, 5])
def test_agreement_completes_at_two(make_project, annotators, make_pairs, overlap):
    project = _dynamic_project(make_project, overlap)
    [pair] = make_pairs(project, 1)
    users = annotators(project, 3)
    assert _judge(project, users[0], "a") and _judge(project, users[1], "a")
    pair.refresh_from_db()
    assert (pair.judgment_count, pair.overlap, pair.is_complete) == (2, 2, True)
    assert services.assignment_next(project=project, annotator=users[2]) is None


@pytest.mark.parametrize("second", ["b", "tie", "both_bad"])
def test_disagreement_asks_for_exactly_a_third(make_project, annotators, make_pairs, second):
    project = _dynamic_project(make_project)
    [pair] = make_pairs(project, 1)
    users = annotators(project, 4)
    _judge(project, users[0], "a")
    _judge(project, users[1], second)
    pair.refresh_from_db()
    assert (pair.judgment_count, pair.overlap, pair.is_complete) == (2, 3, False)
    assert _judge(project, users[2], "a")
    pair.refresh_from_db()
    assert (pair.judgment_count, pair.overlap, pair.is_complete) == (3, 3, True)
    assert services.assignment_next(project=project, annotator=users[3]) is None
    assert Judgment.objects.filter(pair=pair).count() == 3


def test_no_third_lease_while_the_first_two_are_out(make_project, annotators, make_pairs):
    project = _dynamic_project(make_project, overlap=3)
    make_pairs(project, 1)
    users = annotators(project, 3)
    assert services.assignment_next(project=project, annotator=users[0]) is not None
    assert services.assignment_next(project=project, annotator=users[1]) is not None
    assert services.assignment_next(project=project, annotator=users[2]) is None


def test_without_the_flag_overlap_is_fixed(make_project, annotators, make_pairs):
    project = make_project("Fixed", overlap=3)
    [pair] = make_pairs(project, 1)
    users = annotators(project, 3)
    for user in users:
        _judge(project, user, "a")
    pair.refresh_from_db()
    assert (pair.judgment_count, pair.overlap, pair.is_complete) == (3, 3, True)


@pytest.mark.django_db(transaction=True)
def test_concurrent_annotators_never_give_a_pair_a_fourth_judgment(make_project, annotators, make_pairs):
    project = _dynamic_project(make_project, overlap=3)
    make_pairs(project, 30)
    users = annotators(project, 10)
    errors: list[BaseException] = []

    def work_left_for(user) -> bool:
        # A disagreement raises a pair's overlap only when its second judgment lands, so an annotator
        # told "nothing now" while others still hold the first two leases may get the third later.
        return Pair.objects.filter(project=project, is_complete=False).exclude(judgments__annotator=user).exists()

    def annotate(i):
        rng = random.Random(i)
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                leased = services.assignment_next(project=project, annotator=users[i])
                if leased is None:
                    if not work_left_for(users[i]):
                        break
                    time.sleep(0.02)
                    continue
                services.judgment_submit(assignment_id=leased.assignment.pk, annotator=users[i], choice=rng.choice(["left", "right"]))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=annotate, args=(i,)) for i in range(len(users))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    for pair in Pair.objects.all():
        prefs = list(Judgment.objects.filter(pair=pair).order_by("id").values_list("preferred", flat=True))
        assert pair.is_complete and pair.judgment_count == len(prefs)
        if prefs[0] == prefs[1]:
            assert len(prefs) == 2
        else:
            assert len(prefs) == 3
    assert not Judgment.objects.values("pair", "annotator").annotate(n=Count("id")).filter(n__gt=1).exists()
