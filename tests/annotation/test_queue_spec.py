"""The lease queue's specification: one scenario suite, every implementation, every task kind.

Each scenario runs through a *driver*: a task kind served by one implementation of the queue
(`feedback_site.annotation.queue`). On PostgreSQL: pairs through the PL/pgSQL functions
(`queue_pg`, "pair-sql"), pairs through the ORM ("pair-orm"), demonstrations through the ORM
("demonstration-orm"), thumbs up / down ratings through the ORM ("rating-orm") and K-way
rankings through the ORM ("ranking-orm"); on SQLite the
ORM drivers. The Makefile runs the suite on both databases,
so SQLite (ORM), PostgreSQL (ORM) and PostgreSQL (functions) all pass the same scenarios. A new
kind adds a driver here and passes them too. Scenarios that need real row locks across threads
are marked postgres_only. Pair-only guarantees (display order, criteria, dynamic overlap, gold
order, safety holds) run on the pair drivers.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from feedback_site.annotation import queue, services
from feedback_site.annotation.models import Assignment, AssignmentStatus, Judgment, Pair, Response
from feedback_site.annotation.pairs import PAIR
from feedback_site.annotation.rendered import fill_project_html
from feedback_site.conversations import services as conversation_services
from feedback_site.core.errors import Conflict, Invalid, NotFound
from feedback_site.demonstrations import services as demo_services
from feedback_site.demonstrations.models import DemonstrationTask
from feedback_site.demonstrations.services import DEMONSTRATION
from feedback_site.rankings import services as ranking_services
from feedback_site.rankings.models import RankingAssignment, RankingTask
from feedback_site.rankings.services import RANKING
from feedback_site.ratings import services as rating_services
from feedback_site.ratings.models import RatingTask
from feedback_site.ratings.services import RATING
from tests.annotation.conftest import queue_implementations

pytestmark = pytest.mark.django_db

# Statements the ORM implementation may send (SAVEPOINT and RELEASE included, as in a request's
# transaction): a next that leases a new task (membership and pause, open lease, candidate, slot
# recount, insert), a next that serves the open lease (membership, open lease, renewal), and a
# submit (lease, stored result, task lock, guideline, insert, lease and task updates). The
# PostgreSQL functions send exactly one statement each.
ORM_NEXT_BOUND = 7
ORM_RESUME_BOUND = 3
ORM_SUBMIT_BOUND = 9
# Conversations: a next also looks for the annotator's lapsed conversation to resume and opens the
# lease's branch point (12); the driver's submit includes the worker's part, marking the branch
# point generating and storing its replies (about half of the 30).
CONVERSATION_BOUNDS = (12, 5, 30)


@dataclass
class Driver:
    name: str
    kind: queue.TaskKind
    fast: bool  # one statement per next and per submit
    make_tasks: Callable  # (project, n, overlap=None) -> tasks in id order
    next: Callable  # (project, user, now=None) -> lease or None
    submit: Callable  # (lease_id, user, answer=None, now=None) -> (result, created)
    skip: Callable  # (lease_id, user) -> lease
    renew: Callable  # (lease_id, user, now=None) -> lease
    answers: tuple
    bounds: tuple[int, int, int] | None = None  # (next, resume, submit) statements; None: the ORM_* bounds

    def task_of(self, lease):
        return self.kind.task_model.objects.get(pk=getattr(lease, f"{self.kind.task_field}_id"))

    def results(self):
        return self.kind.result_model.objects

    def leases(self):
        return self.kind.lease_model.objects

    def count(self, task) -> int:
        task.refresh_from_db()
        return getattr(task, self.kind.count_field)


def _drivers() -> list[str]:
    pair = [f"pair-{path}" for path in queue_implementations()]
    return pair + ["demonstration-orm", "rating-orm", "ranking-orm", "conversation-orm"]


def _pair_driver(name: str, make_pairs) -> Driver:
    def next_(project, user, now=None):
        leased = services.assignment_next(project=project, annotator=user, now=now)
        return None if leased is None else leased.assignment

    def submit(lease_id, user, answer=None, now=None):
        return services.judgment_submit(assignment_id=lease_id, annotator=user, choice=answer or "left", now=now)

    return Driver(
        name=name,
        kind=PAIR,
        fast=name == "pair-sql",
        make_tasks=lambda project, n, overlap=None: make_pairs(project, n, overlap=overlap),
        next=next_,
        submit=submit,
        skip=lambda lease_id, user: services.assignment_skip(assignment_id=lease_id, annotator=user),
        renew=lambda lease_id, user, now=None: services.assignment_renew(assignment_id=lease_id, annotator=user, now=now),
        answers=("left", "right", "tie"),
    )


def _demonstration_driver(site_admin) -> Driver:
    from feedback_site.annotation.models import Prompt

    def make_tasks(project, n, overlap=None):
        prompts = [Prompt.objects.create(project=project, text=f"Write about topic {i}.") for i in range(n)]
        demo_services.tasks_create(
            project=project,
            actor=site_admin,
            mode="write",
            prompt_ids=[p.pk for p in prompts],
            overlap=project.overlap if overlap is None else overlap,
        )
        return list(DemonstrationTask.objects.filter(prompt__in=prompts).order_by("id"))

    return Driver(
        name="demonstration-orm",
        kind=DEMONSTRATION,
        fast=False,
        make_tasks=make_tasks,
        next=lambda project, user, now=None: demo_services.next_task(project=project, annotator=user, now=now),
        submit=lambda lease_id, user, answer=None, now=None: demo_services.submit(
            assignment_id=lease_id, annotator=user, text=answer or "An ideal answer.", now=now
        ),
        skip=lambda lease_id, user: demo_services.skip(assignment_id=lease_id, annotator=user),
        renew=lambda lease_id, user, now=None: queue.lease_renew(DEMONSTRATION, lease_id=lease_id, annotator=user, now=now),
        answers=("First answer.", "Second answer.", "Third answer."),
    )


def _rating_driver(site_admin) -> Driver:
    from feedback_site.annotation.models import Prompt, Response

    def make_tasks(project, n, overlap=None):
        prompt = Prompt.objects.create(project=project, text="Rate the answers to this.")
        responses = [Response.objects.create(prompt=prompt, text=f"Answer {i}.", sample_index=i) for i in range(n)]
        rating_services.tasks_create(
            project=project,
            actor=site_admin,
            response_ids=[r.pk for r in responses],
            overlap=project.overlap if overlap is None else overlap,
        )
        return list(RatingTask.objects.filter(response__in=responses).order_by("id"))

    return Driver(
        name="rating-orm",
        kind=RATING,
        fast=False,
        make_tasks=make_tasks,
        next=lambda project, user, now=None: rating_services.next_task(project=project, annotator=user, now=now),
        submit=lambda lease_id, user, answer=None, now=None: rating_services.submit(
            assignment_id=lease_id, annotator=user, label=True if answer is None else answer, now=now
        ),
        skip=lambda lease_id, user: rating_services.skip(assignment_id=lease_id, annotator=user),
        renew=lambda lease_id, user, now=None: rating_services.renew(assignment_id=lease_id, annotator=user, now=now),
        answers=(True, False, True),
    )


def _ranking_driver(site_admin) -> Driver:
    from feedback_site.annotation.models import Prompt, Response

    answer_sets: dict[int, list[int]] = {}  # task id -> its response ids, so submit sends no query of its own

    def make_tasks(project, n, overlap=None):
        sets = []
        for i in range(n):
            prompt = Prompt.objects.create(project=project, text=f"Rank the answers to question {i}.")
            sets.append([Response.objects.create(prompt=prompt, text=f"Answer {j} to {i}.", sample_index=j).pk for j in range(4)])
        ranking_services.tasks_create(
            project=project, actor=site_admin, answer_sets=sets, overlap=project.overlap if overlap is None else overlap
        )
        tasks = list(RankingTask.objects.filter(project=project, prompt__text__startswith="Rank the answers").order_by("id"))
        answer_sets.update((task.pk, sorted(task.response_ids)) for task in tasks)
        return tasks

    def submit(lease_id, user, answer=None, now=None):
        # "forward": the answers best-first in creation order; "reverse": worst-first.
        task_id = (
            RankingAssignment.objects.values_list("task_id", flat=True).get(pk=lease_id) if lease_id not in leased else leased[lease_id]
        )
        ids = list(answer_sets[task_id])
        if answer == "reverse":
            ids.reverse()
        ranks = [{"response_id": pk, "rank": rank} for rank, pk in enumerate(ids, start=1)]
        return ranking_services.submit(assignment_id=lease_id, annotator=user, ranks=ranks, now=now)

    leased: dict[int, int] = {}  # lease id -> task id

    def next_(project, user, now=None):
        lease = ranking_services.next_task(project=project, annotator=user, now=now)
        if lease is not None:
            leased[lease.pk] = lease.task_id
        return lease

    return Driver(
        name="ranking-orm",
        kind=RANKING,
        fast=False,
        make_tasks=make_tasks,
        next=next_,
        submit=submit,
        skip=lambda lease_id, user: ranking_services.skip(assignment_id=lease_id, annotator=user),
        renew=lambda lease_id, user, now=None: ranking_services.renew(assignment_id=lease_id, annotator=user, now=now),
        answers=("forward", "reverse", "forward"),
    )


def _conversation_driver(site_admin) -> Driver:
    """One-turn conversations of two replies: the submit first does the worker's part (the
    branch point's replies, through the services the worker calls), then judges the turn, which
    is the last one and so the queue's submit. Its statement bounds count that worker part too."""
    from feedback_site.conversations.models import ConversationTask
    from feedback_site.conversations.services import CONVERSATION
    from tests.conversations.helpers import current, fill_candidates, make_tasks

    def submit(lease_id, user, answer=None, now=None):
        point = current(lease_id)
        ids = fill_candidates(point)
        _, created, result = conversation_services.turn_submit(
            assignment_id=lease_id, annotator=user, branch_point_id=point.pk, choice=ids[answer or 0], now=now
        )
        return result, created

    def make(project, n, overlap=None):
        made = make_tasks(project, site_admin, n, overlap=project.overlap if overlap is None else overlap, turns=1)
        return list(ConversationTask.objects.filter(pk__in=[t.pk for t in made]).order_by("id"))

    return Driver(
        name="conversation-orm",
        kind=CONVERSATION,
        fast=False,
        make_tasks=make,
        next=lambda project, user, now=None: conversation_services.next_task(project=project, annotator=user, now=now),
        submit=submit,
        skip=lambda lease_id, user: conversation_services.skip(assignment_id=lease_id, annotator=user),
        renew=lambda lease_id, user, now=None: conversation_services.renew(assignment_id=lease_id, annotator=user, now=now),
        answers=(0, 1, 0),
        bounds=CONVERSATION_BOUNDS,
    )


@pytest.fixture(params=_drivers())
def driver(request, monkeypatch, make_pairs, site_admin) -> Driver:
    monkeypatch.setattr(services, "USE_SQL_FAST_PATH", request.param == "pair-sql")
    if request.param.startswith("pair-"):
        return _pair_driver(request.param, make_pairs)
    if request.param == "rating-orm":
        return _rating_driver(site_admin)
    if request.param == "conversation-orm":
        return _conversation_driver(site_admin)
    if request.param == "ranking-orm":
        return _ranking_driver(site_admin)
    return _demonstration_driver(site_admin)


@pytest.fixture(params=[f"pair-{path}" for path in queue_implementations()])
def pair_driver(request, monkeypatch, make_pairs) -> Driver:
    monkeypatch.setattr(services, "USE_SQL_FAST_PATH", request.param == "pair-sql")
    return _pair_driver(request.param, make_pairs)


@pytest.fixture
def annotators(make_user, add_member):
    def make(project, n, prefix="q"):
        users = [make_user(f"{prefix}{i}") for i in range(n)]
        for user in users:
            add_member(project, user, "annotator")
        return users

    return make


@pytest.fixture
def expired(driver, make_project, annotators):
    """(project, lease, its annotator, another annotator): one task of overlap 1 whose only lease
    expired five seconds ago."""
    project = make_project(overlap=1)
    driver.make_tasks(project, 1)
    late, other = annotators(project, 2, prefix="x")
    past = timezone.now() - timedelta(seconds=project.lease_seconds + 5)
    return project, driver.next(project, late, now=past), late, other


# ---------------------------------------------------------------------------------------------
# Leases
# ---------------------------------------------------------------------------------------------


def test_next_leases_a_task_and_a_reload_gets_the_same_one(driver, project, annotator):
    driver.make_tasks(project, 3)
    first = driver.next(project, annotator)
    again = driver.next(project, annotator)
    assert first is not None and again.pk == first.pk
    assert driver.leases().filter(annotator=annotator).count() == 1


def test_non_member_cannot_lease(driver, project, make_user):
    driver.make_tasks(project, 1)
    with pytest.raises(NotFound):
        driver.next(project, make_user("stranger"))


def test_a_task_is_never_leased_beyond_its_overlap(driver, make_project, annotators):
    project = make_project(overlap=2)
    [task] = driver.make_tasks(project, 1)
    got = [driver.next(project, user) for user in annotators(project, 3)]
    assert [g is not None for g in got] == [True, True, False]
    assert {driver.task_of(g).pk for g in got[:2]} == {task.pk}


def test_exactly_n_results_from_distinct_annotators(driver, make_project, annotators):
    project = make_project(overlap=3)
    tasks = driver.make_tasks(project, 2)
    users = annotators(project, 5)
    for user in users:
        while (lease := driver.next(project, user)) is not None:
            driver.submit(lease.pk, user)
    for task in tasks:
        assert driver.count(task) == 3 and task.is_complete
        authors = list(driver.results().filter(**{driver.kind.task_field: task}).values_list("annotator_id", flat=True))
        assert len(authors) == len(set(authors)) == 3
    assert driver.results().count() == 6


def test_an_annotator_never_gets_the_same_task_twice(driver, project, annotator):
    driver.make_tasks(project, 2)
    seen = []
    while (lease := driver.next(project, annotator)) is not None:
        seen.append(driver.task_of(lease).pk)
        driver.submit(lease.pk, annotator)
    assert len(seen) == len(set(seen)) == 2


def test_renew_pushes_the_expiry_forward(driver, project, annotator):
    driver.make_tasks(project, 1)
    start = timezone.now()
    lease = driver.next(project, annotator, now=start)
    assert lease.expires_at == start + timedelta(seconds=project.lease_seconds)  # short leases
    renewed = driver.renew(lease.pk, annotator, now=start + timedelta(seconds=60))
    assert renewed.expires_at == start + timedelta(seconds=60 + project.lease_seconds)
    # Asking for the next task again serves the open lease and renews it too.
    later = start + timedelta(seconds=90)
    again = driver.next(project, annotator, now=later)
    assert again.pk == lease.pk
    assert driver.leases().get(pk=lease.pk).expires_at == later + timedelta(seconds=project.lease_seconds)


def test_an_expired_lease_is_renewed_while_its_slot_is_free(driver, expired):
    project, lease, user, other = expired
    assert driver.renew(lease.pk, user).expires_at > timezone.now()
    assert driver.next(project, other) is None  # the renewed lease holds the slot again


def test_skip_frees_the_slot_and_the_task_never_returns(driver, make_project, annotators):
    project = make_project(overlap=1)
    [task] = driver.make_tasks(project, 1)
    first, second = annotators(project, 2)
    lease = driver.next(project, first)
    assert driver.next(project, second) is None  # slot held
    driver.skip(lease.pk, first)
    driver.skip(lease.pk, first)  # idempotent
    assert driver.next(project, first) is None
    assert driver.task_of(driver.next(project, second)).pk == task.pk
    with pytest.raises(Conflict, match="skipped"):
        driver.submit(lease.pk, first)


def test_a_submitted_task_cannot_be_skipped(driver, project, annotator):
    driver.make_tasks(project, 1)
    lease = driver.next(project, annotator)
    driver.submit(lease.pk, annotator)
    with pytest.raises(Conflict) as raised:
        driver.skip(lease.pk, annotator)
    assert raised.value.code == "already_judged"
    with pytest.raises(Conflict) as raised:
        driver.renew(lease.pk, annotator)
    assert raised.value.code == "not_leased"


# ---------------------------------------------------------------------------------------------
# Submit
# ---------------------------------------------------------------------------------------------


def test_submit_is_idempotent(driver, project, annotator):
    [task] = driver.make_tasks(project, 1)
    lease = driver.next(project, annotator)
    result, created = driver.submit(lease.pk, annotator, driver.answers[0])
    again, created_again = driver.submit(lease.pk, annotator, driver.answers[1])
    assert created and not created_again and again.pk == result.pk
    assert driver.results().count() == 1
    assert driver.count(task) == 1 and task.is_complete
    assert driver.leases().get(pk=lease.pk).status == "submitted"


def test_someone_elses_lease_is_not_found(driver, project, annotator, make_user, add_member):
    driver.make_tasks(project, 1)
    other = make_user("other")
    add_member(project, other, "annotator")
    lease = driver.next(project, annotator)
    for call in (lambda: driver.submit(lease.pk, other), lambda: driver.skip(lease.pk, other), lambda: driver.renew(lease.pk, other)):
        with pytest.raises(NotFound):
            call()
    assert driver.results().count() == 0


def test_a_late_submit_is_kept_while_the_task_still_needs_it(driver, expired):
    project, lease, late, other = expired
    # The lease has expired: the task is free again, but nobody has done it yet, so the late
    # answer still counts.
    result, created = driver.submit(lease.pk, late)
    assert created and result.accepted_after_expiry
    assert driver.next(project, other) is None


def test_a_late_submit_is_refused_when_the_task_went_to_someone_else(driver, expired):
    project, stale, late, other = expired
    fresh = driver.next(project, other)
    assert driver.task_of(fresh).pk == driver.task_of(stale).pk
    with pytest.raises(Conflict, match="expired") as raised:
        driver.submit(stale.pk, late)
    assert raised.value.code == "lease_expired"
    with pytest.raises(Conflict, match="expired") as raised:
        driver.renew(stale.pk, late)
    assert raised.value.code == "lease_lost"
    driver.submit(fresh.pk, other)
    assert driver.results().count() == 1


def test_a_late_submit_after_the_task_was_completed_is_refused(driver, make_project, annotators):
    project = make_project(overlap=1)
    [task] = driver.make_tasks(project, 1)
    late, other = annotators(project, 2)
    later = timezone.now() + timedelta(seconds=project.lease_seconds + 5)
    stale = driver.next(project, late)
    fresh = driver.next(project, other, now=later)
    driver.submit(fresh.pk, other, now=later)
    with pytest.raises(Conflict, match="expired"):
        driver.submit(stale.pk, late, now=later)
    assert driver.count(task) == 1 and task.is_complete


# ---------------------------------------------------------------------------------------------
# Order, pauses, holds
# ---------------------------------------------------------------------------------------------


def test_priority_first_then_oldest(driver, make_project, annotators):
    project = make_project(overlap=1)
    first, second, third = driver.make_tasks(project, 3)
    driver.kind.task_model.objects.filter(pk=third.pk).update(priority=5)
    driver.kind.task_model.objects.filter(pk=second.pk).update(priority=1)
    order = []
    for user in annotators(project, 3):
        order.append(driver.task_of(driver.next(project, user)).pk)
    # Uncertainty sampling (quality.uncertainty) writes its order into `priority`.
    assert order == [third.pk, second.pk, first.pk]


def test_a_paused_member_gets_nothing_until_unpaused(driver, project, annotator, site_admin):
    driver.make_tasks(project, 1)
    services.membership_pause(project=project, user=annotator, reason="gold accuracy 1/5", actor=site_admin)
    with pytest.raises(queue.Paused, match="gold accuracy 1/5") as raised:
        driver.next(project, annotator)
    assert raised.value.code == "paused" and raised.value.status_code == 403
    assert driver.leases().count() == 0
    services.membership_unpause(project=project, user=annotator, actor=site_admin)
    assert driver.next(project, annotator) is not None


def test_a_task_with_overlap_zero_is_not_queued(driver, project, annotator):
    [task] = driver.make_tasks(project, 1)
    driver.kind.task_model.objects.filter(pk=task.pk).update(overlap=0)  # what a safety hold does
    assert driver.next(project, annotator) is None


def test_safety_holds_keep_pairs_out_of_the_queue_until_released(pair_driver, project, annotator, site_admin):
    from feedback_site.safety.services import policy_update, screen_responses

    held, shown = pair_driver.make_tasks(project, 2)
    policy_update(project=project, actor=site_admin, action="hide")
    Response.objects.filter(pk=held.response_a_id).update(text="how to make a pipe bomb")
    screen_responses(project=project, responses=list(Response.objects.filter(prompt__project=project)))
    held.refresh_from_db()
    assert held.overlap == 0
    lease = pair_driver.next(project, annotator)
    assert lease.pair_id == shown.pk
    pair_driver.submit(lease.pk, annotator)
    assert pair_driver.next(project, annotator) is None


# ---------------------------------------------------------------------------------------------
# Pairs: display order, criteria, validation
# ---------------------------------------------------------------------------------------------


def test_a_reload_is_reported_as_resumed(pair_driver, project, annotator):
    pair_driver.make_tasks(project, 2)
    first = services.assignment_next(project=project, annotator=annotator)
    again = services.assignment_next(project=project, annotator=annotator)
    assert not first.resumed and again.resumed and again.assignment.pk == first.assignment.pk


def test_submit_maps_the_display_order_back_to_a_b(pair_driver, project, annotator):
    pair_driver.make_tasks(project, 1)
    lease = pair_driver.next(project, annotator)
    judgment, _ = services.judgment_submit(assignment_id=lease.pk, annotator=annotator, choice="left", time_spent_ms=1200)
    assert judgment.preferred == ("b" if lease.swapped else "a")
    assert judgment.swapped == lease.swapped and judgment.time_spent_ms == 1200


def test_left_right_order_is_randomised_per_assignment(pair_driver, make_project, annotators):
    project = make_project(overlap=1)
    pair_driver.make_tasks(project, 60)
    [user] = annotators(project, 1)
    swaps = []
    for _ in range(60):
        lease = pair_driver.next(project, user)
        swaps.append(lease.swapped)
        pair_driver.skip(lease.pk, user)
    # Both orders occur (a fair coin gives all-equal with probability 2 * 2**-60).
    assert 0 < sum(swaps) < 60


def test_criteria_votes_are_stored_in_canonical_terms(pair_driver, make_project, annotators):
    project = make_project(criteria=["helpful", "harmless"])
    pair_driver.make_tasks(project, 1)
    [user] = annotators(project, 1)
    lease = pair_driver.next(project, user)
    judgment, _ = services.judgment_submit(
        assignment_id=lease.pk,
        annotator=user,
        choice="right",
        strength="clear",
        criteria={"helpful": "right", "harmless": "tie"},
        rationale="more specific",
    )
    right = "a" if lease.swapped else "b"
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
def test_bad_submissions_are_refused_and_store_nothing(pair_driver, project, annotator, kwargs, phrase):
    pair_driver.make_tasks(project, 1)
    lease = pair_driver.next(project, annotator)
    with pytest.raises(Invalid, match=phrase):
        services.judgment_submit(assignment_id=lease.pk, annotator=annotator, **kwargs)
    assert Judgment.objects.count() == 0
    assert Assignment.objects.get().status == AssignmentStatus.LEASED


def test_bad_demonstrations_are_refused_after_the_ownership_check(project, annotator, make_user, add_member, site_admin):
    driver = _demonstration_driver(site_admin)
    driver.make_tasks(project, 1)
    lease = driver.next(project, annotator)
    stranger = make_user("stranger")
    add_member(project, stranger, "annotator")
    with pytest.raises(NotFound):
        driver.submit(lease.pk, stranger, "   ")  # not "invalid text": the lease is not theirs
    with pytest.raises(Invalid, match="non-empty"):
        driver.submit(lease.pk, annotator, "   ")
    with pytest.raises(Invalid, match="longer than"):
        driver.submit(lease.pk, annotator, "x" * (demo_services.MAX_TEXT_CHARS + 1))
    assert driver.results().count() == 0


# ---------------------------------------------------------------------------------------------
# Pairs: dynamic overlap (two judgments; a third only when they disagree; never a fourth)
# ---------------------------------------------------------------------------------------------


def _dynamic_project(make_project, overlap: int = 3):
    project = make_project("Dynamic", overlap=overlap)
    project.dynamic_overlap = True
    project.save(update_fields=["dynamic_overlap"])
    return project


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
def test_dynamic_agreement_completes_at_two(pair_driver, make_project, annotators, overlap):
    project = _dynamic_project(make_project, overlap)
    [pair] = pair_driver.make_tasks(project, 1)
    users = annotators(project, 3)
    assert _judge(project, users[0], "a") and _judge(project, users[1], "a")
    pair.refresh_from_db()
    assert (pair.judgment_count, pair.overlap, pair.is_complete) == (2, 2, True)
    assert services.assignment_next(project=project, annotator=users[2]) is None


@pytest.mark.parametrize("second", ["b", "tie", "both_bad"])
def test_dynamic_disagreement_asks_for_exactly_a_third(pair_driver, make_project, annotators, second):
    project = _dynamic_project(make_project)
    [pair] = pair_driver.make_tasks(project, 1)
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


def test_dynamic_no_third_lease_while_the_first_two_are_out(pair_driver, make_project, annotators):
    project = _dynamic_project(make_project, overlap=3)
    pair_driver.make_tasks(project, 1)
    users = annotators(project, 3)
    assert services.assignment_next(project=project, annotator=users[0]) is not None
    assert services.assignment_next(project=project, annotator=users[1]) is not None
    assert services.assignment_next(project=project, annotator=users[2]) is None


def test_without_the_flag_overlap_is_fixed(pair_driver, make_project, annotators):
    project = make_project("Fixed", overlap=3)
    [pair] = pair_driver.make_tasks(project, 1)
    for user in annotators(project, 3):
        _judge(project, user, "a")
    pair.refresh_from_db()
    assert (pair.judgment_count, pair.overlap, pair.is_complete) == (3, 3, True)


def test_dynamic_overlap_does_not_apply_to_demonstrations(make_project, annotators, site_admin):
    driver = _demonstration_driver(site_admin)
    project = _dynamic_project(make_project, overlap=3)
    [task] = driver.make_tasks(project, 1)
    for user in annotators(project, 4):
        if (lease := driver.next(project, user)) is not None:
            driver.submit(lease.pk, user, "The same answer.")
    assert driver.count(task) == 3 and task.overlap == 3


@pytest.mark.parametrize(("second", "expected"), [(True, (2, 2, True)), (False, (2, 3, False))])
def test_dynamic_overlap_on_ratings_asks_a_third_only_on_disagreement(make_project, annotators, site_admin, second, expected):
    driver = _rating_driver(site_admin)
    project = _dynamic_project(make_project, overlap=3)
    [task] = driver.make_tasks(project, 1)
    users = annotators(project, 4)
    for user, label in zip(users, (True, second)):
        driver.submit(driver.next(project, user).pk, user, label)
    task.refresh_from_db()
    assert (task.submitted_count, task.overlap, task.is_complete) == expected
    third = driver.next(project, users[2])
    assert (third is not None) == (not expected[2])


# ---------------------------------------------------------------------------------------------
# Pairs: gold (the rate and pauses are in test_gold.py, through both pair paths)
# ---------------------------------------------------------------------------------------------


def test_gold_is_served_in_the_same_md5_order_on_every_path(pair_driver, make_project, annotators, site_admin):
    project = make_project("Gold order", overlap=1)
    project.gold_rate = 1.0
    project.save(update_fields=["gold_rate"])
    gold = pair_driver.make_tasks(project, 6)
    for pair in gold:
        services.pair_set_gold(pair=pair, actor=site_admin, gold=True, gold_label="a")
    for user in annotators(project, 2):
        served = []
        while (lease := pair_driver.next(project, user)) is not None:
            served.append(lease.pair_id)
            pair_driver.submit(lease.pk, user)
        expected = sorted((p.pk for p in gold), key=lambda pk: hashlib.md5(f"{pk}:{user.pk}".encode()).hexdigest())
        assert served == expected


def test_gold_rate_mixes_gold_outside_the_overlap(pair_driver, make_project, annotators, site_admin):
    project = make_project("Gold rate", overlap=1)
    project.gold_rate = 0.25
    project.save(update_fields=["gold_rate"])
    pair_driver.make_tasks(project, 18)  # six normal pairs for each of three annotators
    gold = pair_driver.make_tasks(project, 3)
    for pair in gold:
        services.pair_set_gold(pair=pair, actor=site_admin, gold=True, gold_label="b")
    gold_ids = {p.pk for p in gold}
    for user in annotators(project, 3):
        served = []
        for _ in range(8):  # with rate 1/4, exactly two of any eight are gold
            lease = pair_driver.next(project, user)
            served.append(lease.pair_id)
            pair_driver.submit(lease.pk, user)
        assert len([p for p in served if p in gold_ids]) == 2
    assert all(p.judgment_count == 0 for p in Pair.objects.filter(pk__in=gold_ids))
    assert all(p.judgment_count <= 1 for p in Pair.objects.exclude(pk__in=gold_ids))


# ---------------------------------------------------------------------------------------------
# Query counts on the hot paths
# ---------------------------------------------------------------------------------------------


def test_next_and_submit_statement_counts(driver, make_project, annotators):
    project = make_project(overlap=2)
    driver.make_tasks(project, 2)
    fill_project_html(project.pk)  # the payload reads stored HTML (no rendering on the hot path)
    [user] = annotators(project, 1)
    with CaptureQueriesContext(connection) as leasing:
        lease = driver.next(project, user)
    with CaptureQueriesContext(connection) as resuming:
        driver.next(project, user)
    with CaptureQueriesContext(connection) as submitting:
        driver.submit(lease.pk, user)
    counts = (len(leasing), len(resuming), len(submitting))
    if driver.fast:
        assert counts == (1, 1, 1), [q["sql"] for q in leasing.captured_queries + submitting.captured_queries]
    else:
        bounds = driver.bounds or (ORM_NEXT_BOUND, ORM_RESUME_BOUND, ORM_SUBMIT_BOUND)
        assert counts[0] <= bounds[0] and counts[1] <= bounds[1] and counts[2] <= bounds[2], counts


# ---------------------------------------------------------------------------------------------
# Concurrency (real row locks: PostgreSQL)
# ---------------------------------------------------------------------------------------------


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


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_many_concurrent_annotators_never_exceed_overlap_or_lose_results(driver, make_project, annotators):
    project = make_project(overlap=3)
    tasks = driver.make_tasks(project, 40)
    users = annotators(project, 16, prefix="c")
    acknowledged: list[int] = []
    lock = threading.Lock()

    def annotate(i):
        user = users[i]
        while (lease := driver.next(project, user)) is not None:
            result, created = driver.submit(lease.pk, user, driver.answers[i % 3])
            assert created
            with lock:
                acknowledged.append(result.pk)

    assert _run_threads(len(users), annotate) == []
    assert len(acknowledged) == len(set(acknowledged)) == 40 * 3
    assert set(driver.results().values_list("pk", flat=True)) == set(acknowledged)
    field = driver.kind.task_field
    per_task = dict(driver.results().values(field).annotate(n=Count("id")).values_list(field, "n"))
    assert set(per_task.values()) == {3} and len(per_task) == len(tasks)
    assert all(driver.count(t) == 3 and t.is_complete for t in tasks)
    assert not driver.results().values(field, "annotator").annotate(n=Count("id")).filter(n__gt=1).exists()


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_repeats_of_one_submit_store_one_result(driver, project, annotator):
    driver.make_tasks(project, 1)
    lease = driver.next(project, annotator)
    results: list[bool] = []

    def submit(_):
        _, created = driver.submit(lease.pk, annotator)
        results.append(created)

    assert _run_threads(8, submit) == []
    assert sorted(results) == [False] * 7 + [True]
    assert driver.results().count() == 1


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_next_waits_for_the_last_task_when_another_request_has_it_locked(driver, make_project, annotators):
    """At the end of the queue the only task left may be locked by another request (a submit on
    it): next waits for the lock instead of answering "nothing left" while work remains."""
    project = make_project(overlap=1)
    [task] = driver.make_tasks(project, 1)
    [user] = annotators(project, 1)
    locked, release = threading.Event(), threading.Event()

    def hold_lock(_):
        with transaction.atomic():
            driver.kind.task_model.objects.select_for_update().get(pk=task.pk)
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=lambda: _run_threads(1, hold_lock))
    holder.start()
    assert locked.wait(10)
    threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    lease = driver.next(project, user)
    holder.join(10)
    assert lease is not None and driver.task_of(lease).pk == task.pk
    assert time.monotonic() - started >= 0.4  # it waited for the lock, then served the task


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_annotators_never_give_a_pair_a_fourth_judgment(pair_driver, make_project, annotators):
    project = _dynamic_project(make_project, overlap=3)
    pair_driver.make_tasks(project, 30)
    users = annotators(project, 10, prefix="d")

    def work_left_for(user) -> bool:
        # A disagreement raises a pair's overlap only when its second judgment lands, so an annotator
        # told "nothing now" while others still hold the first two leases may get the third later.
        return Pair.objects.filter(project=project, is_complete=False).exclude(judgments__annotator=user).exists()

    def annotate(i):
        rng = random.Random(i)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            leased = services.assignment_next(project=project, annotator=users[i])
            if leased is None:
                if not work_left_for(users[i]):
                    break
                time.sleep(0.02)
                continue
            services.judgment_submit(assignment_id=leased.assignment.pk, annotator=users[i], choice=rng.choice(["left", "right"]))

    assert _run_threads(len(users), annotate) == []
    for pair in Pair.objects.all():
        prefs = list(Judgment.objects.filter(pair=pair).order_by("id").values_list("preferred", flat=True))
        assert pair.is_complete and pair.judgment_count == len(prefs)
        assert len(prefs) == (2 if prefs[0] == prefs[1] else 3)
    assert not Judgment.objects.values("pair", "annotator").annotate(n=Count("id")).filter(n__gt=1).exists()


def test_the_suite_covers_every_implementation_this_database_has():
    expected = {"pair-orm", "demonstration-orm", "rating-orm", "ranking-orm", "conversation-orm"}
    if "postgresql" in settings.DATABASES["default"]["ENGINE"]:
        expected.add("pair-sql")
    assert set(_drivers()) == expected
    # Every task kind registered with the queue has a driver here.
    assert {name.rsplit("-", 1)[0] for name in _drivers()} == set(queue.KINDS)
