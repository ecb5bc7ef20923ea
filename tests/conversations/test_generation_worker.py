"""Next-turn generation through Redis and a real playground worker with a tiny random policy:
the K replies of each branch point arrive (distinct, sampled from the task's version), and a
worker killed while it generates a turn leaves the conversation where it was; the redelivered
task generates the turn again and stores it exactly once."""

from __future__ import annotations

import os
import signal
import time

import pytest

from feedback_site.conversations import services
from feedback_site.conversations import snapshots as conversation_snapshots
from feedback_site.conversations.models import BranchPoint, ConversationNode, ConversationTask, GenerationStatus
from tests.playground.conftest import start_playground_worker, tiny_models  # noqa: F401  (fixtures)
from tests.workers.conftest import redis_broker, wait_for  # noqa: F401  (fixture)

from .helpers import OPENING, current, replies

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def tiny_project(site_admin, tiny_models, make_user, add_member):  # noqa: F811
    from feedback_site.registry.services import project_create

    project = project_create(creator=site_admin, name="Conversations", overlap=1, base_policy_uri=str(tiny_models["base"]))
    annotator = make_user("talker")
    add_member(project, annotator, "annotator")
    return project, annotator


def _ready(point_id: int):
    point = BranchPoint.objects.get(pk=point_id)
    if point.status == GenerationStatus.FAILED:
        raise AssertionError(f"generation failed: {point.error}")
    return point.status == GenerationStatus.READY


def test_a_worker_generates_each_turn_of_a_conversation(tiny_project, site_admin, start_playground_worker):
    project, annotator = tiny_project
    services.tasks_create(
        project=project,
        actor=site_admin,
        conversations=[OPENING],
        turns=2,
        candidates=3,
        sampling={"max_new_tokens": 12, "temperature": 1.2},
    )
    worker = start_playground_worker("conv")
    assignment = services.next_task(project=project, annotator=annotator)
    for turn in range(2):
        point = current(assignment.pk)
        wait_for(lambda point_id=point.pk: _ready(point_id), 180, worker, f"the replies of turn {turn + 1}")
        ids = replies(point)
        texts = [ConversationNode.objects.get(pk=i).content for i in ids]
        assert len(ids) == 3 and len(set(texts)) == 3
        assert all(ConversationNode.objects.get(pk=i).model_version_id == project.current_policy_id for i in ids)
        services.turn_submit(assignment_id=assignment.pk, annotator=annotator, branch_point_id=point.pk, choice=ids[turn])
    rows, points = conversation_snapshots.export_rows(project)
    assert points == 2 and len(rows) == 4
    assert [m["content"] for m in rows[-1]["prompt"]][-1] == OPENING["followups"][0]


def _pool_children(pid: int) -> list[int]:
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as listing:
            children += [int(child) for child in listing.read().split()]
    return children


def test_a_worker_killed_mid_turn_leaves_the_conversation_and_the_turn_is_generated_again(
    tiny_project, site_admin, start_playground_worker
):
    project, annotator = tiny_project
    # Long replies, so the worker is surely still generating when it is killed.
    [task] = services.tasks_create(
        project=project, actor=site_admin, conversations=[OPENING], turns=1, candidates=2, sampling={"max_new_tokens": 4000}
    )
    worker = start_playground_worker("conv")
    assignment = services.next_task(project=project, annotator=annotator)
    point = current(assignment.pk)
    wait_for(lambda: BranchPoint.objects.get(pk=point.pk).status == GenerationStatus.GENERATING, 120, worker, "generation to start")
    # The redelivered attempt reads the task again: short replies, so the test does not wait long.
    ConversationTask.objects.filter(pk=task.pk).update(sampling={**task.sampling, "max_new_tokens": 8})
    time.sleep(0.5)
    [child] = _pool_children(worker.process.pid)
    os.kill(child, signal.SIGKILL)  # the pool process generating the turn
    wait_for(lambda: _ready(point.pk), 180, worker, "the turn to be generated again")
    point.refresh_from_db()
    assert point.attempts == 2 and len(replies(point)) == 2  # generated again, stored once
    assert BranchPoint.objects.filter(assignment=assignment).count() == 1  # the conversation stayed where it was
    state = services.payload(services.next_task(project=project, annotator=annotator))
    assert state["branch_point"]["id"] == point.pk and [m["content"] for m in state["history"]] == ["Plan a picnic."]
    assert len(state["branch_point"]["replies"]) == 2
