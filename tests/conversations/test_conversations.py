"""Conversation trees: the conversation task kind on the one queue (its scenario suite is
tests/annotation/test_queue_spec.py, "conversation-orm"), the tree each path grows, stale and bad
turns, reload and resume, a redelivered generation, snapshots in TRL's conversational preference
format (loaded with `datasets`, accepted by TRL's chat-template step), imports and the API."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feedback_site.conversations import generation as conversation_generation
from feedback_site.conversations import importers, services
from feedback_site.conversations import snapshots as conversation_snapshots
from feedback_site.conversations.models import (
    BranchPoint,
    ConversationAssignment,
    ConversationNode,
    ConversationResult,
    ConversationTask,
    GenerationStatus,
)
from feedback_site.core.errors import Conflict, Invalid, NotFound
from feedback_site.projects.models import ImportBatch

from .helpers import OPENING, current, fill_candidates, make_tasks, replies, walk

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(project, make_user, add_member):
    users = [make_user(f"talker-{i}") for i in range(3)]
    for user in users:
        add_member(project, user, "annotator")
    return users


@pytest.fixture
def api_for():
    def make(user) -> APIClient:
        client = APIClient()
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


def _rows():
    return (
        ConversationNode.objects.count(),
        BranchPoint.objects.filter(judged_at__isnull=False).count(),
        ConversationResult.objects.count(),
    )


def test_a_three_turn_conversation_grows_one_path_and_submits_once(project, site_admin, people):
    [task] = make_tasks(project, site_admin, overlap=2, candidates=3)
    a = people[0]
    assignment = services.next_task(project=project, annotator=a)
    first = current(assignment.pk)
    assert (first.turn_index, first.status, first.parent_id) == (0, GenerationStatus.PENDING, task.opening_id)
    state = services.payload(assignment)
    assert state["branch_point"]["status"] == "pending" and state["branch_point"]["replies"] == []
    assert [m["content"] for m in state["history"]] == ["Plan a picnic (0)."] and state["system_prompt"] == "You are terse."

    ids = fill_candidates(first)
    assert len(ids) == 3
    # Rank with a tie: reply 2 best, 0 and 1 tied.
    point, created, result = services.turn_submit(
        assignment_id=assignment.pk, annotator=a, branch_point_id=first.pk, order=[[ids[2]], [ids[0], ids[1]]], time_spent_ms=900
    )
    assert created and result is None and point.order == [[ids[2]], [ids[0], ids[1]]] and point.chosen_id == ids[2]
    second = current(assignment.pk)
    assert second.turn_index == 1 and second.parent.content == OPENING["followups"][0] and second.parent.parent_id == ids[2]

    ids = fill_candidates(second)
    services.turn_submit(assignment_id=assignment.pk, annotator=a, branch_point_id=second.pk, choice=ids[1])
    third = current(assignment.pk)
    ids = fill_candidates(third)
    point, created, result = services.turn_submit(assignment_id=assignment.pk, annotator=a, branch_point_id=third.pk, choice=ids[0])
    assert created and result is not None and result.leaf_id == ids[0]
    assert point.order == [[ids[0]], [ids[1], ids[2]]]  # a pick: the picked one first, the rest tied second
    task.refresh_from_db()
    assert task.submitted_count == 1 and not task.is_complete
    assert ConversationAssignment.objects.get(pk=assignment.pk).status == "submitted"

    state = services.payload(ConversationAssignment.objects.get(pk=assignment.pk))
    assert state["done"] and state["branch_point"] is None and state["judged_turns"] == 3
    roles = [m["role"] for m in state["history"]]
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant"]
    # A repeat of the last turn answers with the stored result.
    again = services.turn_submit(assignment_id=assignment.pk, annotator=a, branch_point_id=third.pk, choice=ids[2])
    assert again[1] is False and again[2].pk == result.pk

    # The second annotator walks a second branch below the same opening: a tree.
    b_assignment = services.next_task(project=project, annotator=people[1])
    assert b_assignment.task_id == task.pk
    walk(b_assignment, people[1], pick=1)
    task.refresh_from_db()
    assert task.is_complete and task.submitted_count == 2
    below_opening = ConversationNode.objects.filter(parent_id=task.opening_id)
    assert below_opening.count() == 6  # 3 candidates for each of two branches
    assert services.next_task(project=project, annotator=people[2]) is None


def test_a_stale_or_foreign_branch_point_is_a_400_naming_the_field_and_stores_nothing(project, site_admin, people):
    make_tasks(project, site_admin, n=2, overlap=1)
    a, b, _ = people
    mine = services.next_task(project=project, annotator=a)
    theirs = services.next_task(project=project, annotator=b)
    mine_ids = fill_candidates(current(mine.pk))
    their_point = current(theirs.pk)
    their_ids = fill_candidates(their_point)
    before = _rows()
    for bad in (their_point.pk, 999_999, "12", None):
        with pytest.raises(Invalid, match="branch_point_id") as raised:
            services.turn_submit(assignment_id=mine.pk, annotator=a, branch_point_id=bad, choice=their_ids[0])
        assert raised.value.status_code == 400
    assert _rows() == before
    # Someone else's assignment is not found (ids reveal nothing), before any validation.
    with pytest.raises(NotFound):
        services.turn_submit(assignment_id=theirs.pk, annotator=a, branch_point_id=their_point.pk, choice=mine_ids[0])
    assert _rows() == before


@pytest.mark.parametrize(
    ("answer", "field"),
    [
        ({"choice": "first"}, "choice"),
        ({"order": [[1, 2]]}, "order"),
        ({}, "order"),
        ({"order": "best"}, "order"),
        ({"edited_text": "better"}, "edited_text"),
        ({"next_user_turn": "my own"}, "next_user_turn"),
        ({"time_spent_ms": -1}, "time_spent_ms"),
    ],
)
def test_bad_turns_name_the_field_and_store_nothing(project, site_admin, people, answer, field):
    make_tasks(project, site_admin)
    assignment = services.next_task(project=project, annotator=people[0])
    point = current(assignment.pk)
    ids = fill_candidates(point)
    if "order" not in answer and "choice" not in answer and field not in ("order",):
        answer = {"choice": ids[0], **answer}
    before = _rows()
    with pytest.raises(Invalid, match=f"^{field}:"):
        services.turn_submit(assignment_id=assignment.pk, annotator=people[0], branch_point_id=point.pk, **answer)
    assert _rows() == before and current(assignment.pk).pk == point.pk


def test_a_turn_before_its_replies_are_ready_is_refused(project, site_admin, people):
    make_tasks(project, site_admin)
    assignment = services.next_task(project=project, annotator=people[0])
    with pytest.raises(Conflict) as raised:
        services.turn_submit(assignment_id=assignment.pk, annotator=people[0], branch_point_id=current(assignment.pk).pk, choice=1)
    assert raised.value.code == "not_ready"


def test_edits_and_written_user_turns_continue_the_conversation(project, site_admin, people):
    make_tasks(project, site_admin, turns=2, allow_edits=True, allow_user_turns=True)
    a = people[0]
    assignment = services.next_task(project=project, annotator=a)
    point = current(assignment.pk)
    ids = fill_candidates(point)
    services.turn_submit(
        assignment_id=assignment.pk,
        annotator=a,
        branch_point_id=point.pk,
        choice=ids[1],
        edited_text="A tidier reply.",
        next_user_turn="My own question?",
    )
    point.refresh_from_db()
    edit = point.continued_with
    assert edit.source == "edit" and edit.edited_from_id == ids[1] and edit.author_id == a.pk and point.chosen_id == ids[1]
    nxt = current(assignment.pk)
    assert nxt.parent.content == "My own question?" and nxt.parent.source == "written" and nxt.parent.parent_id == edit.pk
    history = [m["content"] for m in services.payload(assignment)["history"]]
    assert history == ["Plan a picnic (0).", "A tidier reply.", "My own question?"]
    # The edit is a preference of its own: the tidier reply over the one it was made from.
    rows, _ = conversation_snapshots.export_rows(project)
    edits = [row for row in rows if row["edit"]]
    assert [(r["chosen"][0]["content"], r["rejected_node_id"], r["weight"]) for r in edits] == [("A tidier reply.", ids[1], 1.0)]
    assert all(r["chosen_node_id"] == ids[1] for r in rows if not r["edit"])


def test_without_scripted_turns_user_turns_must_be_allowed(project, site_admin):
    with pytest.raises(Invalid, match=r"^conversations\[0\]\.followups: 3 turns need 2"):
        services.tasks_create(project=project, actor=site_admin, conversations=[{"messages": [{"role": "user", "content": "Hi"}]}], turns=3)
    with pytest.raises(Invalid, match=r"^conversations\[0\]\.messages\[1\]\.role: expected 'assistant'"):
        services.tasks_create(
            project=project,
            actor=site_admin,
            conversations=[{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}],
            turns=1,
        )
    with pytest.raises(Invalid, match="^candidates:"):
        make_tasks(project, site_admin, candidates=10)
    assert not ConversationTask.objects.exists()


def test_a_reload_serves_the_same_conversation_and_turn(project, site_admin, people):
    make_tasks(project, site_admin, n=2)
    a = people[0]
    assignment = services.next_task(project=project, annotator=a)
    walk_one = fill_candidates(current(assignment.pk))
    services.turn_submit(assignment_id=assignment.pk, annotator=a, branch_point_id=current(assignment.pk).pk, choice=walk_one[0])
    before = services.payload(assignment)
    again = services.next_task(project=project, annotator=a)
    assert again.pk == assignment.pk and BranchPoint.objects.filter(assignment=assignment).count() == 2
    after = services.payload(again)
    assert after["history"] == before["history"] and after["branch_point"]["id"] == before["branch_point"]["id"]


def test_a_conversation_left_mid_way_is_resumed_not_replaced(project, site_admin, people):
    make_tasks(project, site_admin, n=2, overlap=1)
    a = people[0]
    start = timezone.now()
    assignment = services.next_task(project=project, annotator=a, now=start)
    ids = fill_candidates(current(assignment.pk))
    services.turn_submit(assignment_id=assignment.pk, annotator=a, branch_point_id=current(assignment.pk).pk, choice=ids[0], now=start)
    # The annotator goes away; the lease lapses. Asking again gives the same conversation back.
    later = start + timedelta(seconds=project.lease_seconds * 3)
    resumed = services.next_task(project=project, annotator=a, now=later)
    assert resumed.pk == assignment.pk and resumed.expires_at > later
    assert current(assignment.pk).turn_index == 1
    walk(resumed, a, now=later)
    assert ConversationResult.objects.get(assignment=assignment).task_id == assignment.task_id


def test_a_lapsed_conversation_whose_slot_went_elsewhere_keeps_its_judged_turns(project, site_admin, people):
    [task] = make_tasks(project, site_admin, overlap=1)
    a, b, _ = people
    start = timezone.now()
    assignment = services.next_task(project=project, annotator=a, now=start)
    ids = fill_candidates(current(assignment.pk))
    services.turn_submit(assignment_id=assignment.pk, annotator=a, branch_point_id=current(assignment.pk).pk, choice=ids[1], now=start)
    later = start + timedelta(seconds=project.lease_seconds * 3)
    taken = services.next_task(project=project, annotator=b, now=later)
    assert taken.task_id == task.pk
    # a's lapsed lease cannot come back (the slot is b's): a gets nothing, the lease is given up.
    assert services.next_task(project=project, annotator=a, now=later) is None
    assert ConversationAssignment.objects.get(pk=assignment.pk).status == "skipped"
    with pytest.raises(Conflict):
        services.turn_submit(assignment_id=assignment.pk, annotator=a, branch_point_id=current(assignment.pk).pk, choice=1, now=later)
    rows, points = conversation_snapshots.export_rows(project)
    assert points == 1 and rows[0]["chosen_node_id"] == ids[1]  # the judged turn is kept


def test_a_redelivered_generation_after_a_worker_died_stores_the_turn_exactly_once(project, site_admin, people):
    make_tasks(project, site_admin, candidates=3)
    assignment = services.next_task(project=project, annotator=people[0])
    point = current(assignment.pk)
    # A worker takes the task and dies mid-generation: the branch point says generating, nothing stored.
    job = conversation_generation.generation_start(branch_point_id=point.pk)
    assert job["k"] == 3 and job["messages"][0] == {"role": "system", "content": "You are terse."}
    point.refresh_from_db()
    assert (point.status, point.attempts) == (GenerationStatus.GENERATING, 1) and replies(point) == []
    assert services.payload(assignment)["branch_point"]["status"] == "generating"
    # The broker redelivers (acks late): the turn is generated again and stored once.
    assert conversation_generation.generation_start(branch_point_id=point.pk) is not None
    assert conversation_generation.candidates_store(branch_point_id=point.pk, texts=["x", "y", "z"]) is True
    # A duplicate delivery finds the turn ready and stores nothing.
    assert conversation_generation.generation_start(branch_point_id=point.pk) is None
    assert conversation_generation.candidates_store(branch_point_id=point.pk, texts=["p", "q", "r"]) is False
    point.refresh_from_db()
    assert (point.status, point.attempts) == (GenerationStatus.READY, 2)
    assert [ConversationNode.objects.get(pk=i).content for i in replies(point)] == ["x", "y", "z"]


def test_a_failed_generation_can_be_retried(project, site_admin, people):
    make_tasks(project, site_admin)
    a = people[0]
    assignment = services.next_task(project=project, annotator=a)
    point = current(assignment.pk)
    conversation_generation.generation_start(branch_point_id=point.pk)
    conversation_generation.generation_fail(branch_point_id=point.pk, error="RuntimeError: out of memory")
    state = services.payload(assignment)["branch_point"]
    assert state["status"] == "failed" and "out of memory" in state["error"]
    again = services.generation_retry(assignment_id=assignment.pk, annotator=a, branch_point_id=point.pk)
    assert again.status in ("pending", "failed")  # failed again only when the broker is unreachable
    assert fill_candidates(point)


def test_snapshot_exports_every_branch_with_its_full_history_and_loads_in_datasets(project, site_admin, people, tmp_path):
    import datasets
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    make_tasks(project, site_admin, overlap=2, candidates=3)
    for user, pick in zip(people[:2], (0, 2)):
        walk(services.next_task(project=project, annotator=user), user, pick=pick)
    snapshot, created = conversation_snapshots.snapshot_create(project=project, actor=site_admin)
    assert created and snapshot.branch_point_count == 6
    # A pick of 3 ranks the picked reply above the two others, tied: two pairs per branch point.
    assert snapshot.example_count == 12
    rows = [json.loads(line) for line in conversation_snapshots.snapshot_file(snapshot).read_text().splitlines()]
    assert len(rows) == 12
    third_turns = [r for r in rows if r["turn_index"] == 2]
    for row in third_turns:
        # system, the opening, and every earlier user turn and chosen reply of this branch.
        assert [m["role"] for m in row["prompt"]] == ["system", "user", "assistant", "user", "assistant", "user"]
        assert row["prompt"][3]["content"] == OPENING["followups"][0] and row["prompt"][5]["content"] == OPENING["followups"][1]
        point = BranchPoint.objects.get(pk=row["branch_point_id"])
        earlier = BranchPoint.objects.filter(assignment=point.assignment, turn_index__lt=2).order_by("turn_index")
        assert [row["prompt"][2]["content"], row["prompt"][4]["content"]] == [b.continued_with.content for b in earlier]
        assert row["chosen"] == [{"role": "assistant", "content": point.chosen.content}]
        assert row["rejected"][0]["role"] == "assistant" and row["rejected"][0]["content"] != point.chosen.content
        assert row["weight"] == 0.5 and row["annotator"].startswith("ann-")
    assert len({tuple(m["content"] for m in r["prompt"]) for r in third_turns}) == 2  # two branches
    again, created_again = conversation_snapshots.snapshot_create(project=project, actor=site_admin)
    assert not created_again and again.pk == snapshot.pk

    dataset = datasets.load_dataset("json", data_files=str(conversation_snapshots.snapshot_file(snapshot)), split="train")
    assert len(dataset) == 12 and is_conversational(dataset[0])
    assert dataset[0]["chosen"][0]["role"] == "assistant" and dataset[0]["prompt"][0]["role"] == "system"
    from transformers import AutoTokenizer

    from rlhf.models import make_tiny_model

    tokenizer = AutoTokenizer.from_pretrained(make_tiny_model(tmp_path / "tiny", seed=0))
    # TRL's DPO data path applies the chat template to conversational rows: the whole history is in the prompt.
    text = maybe_apply_chat_template(dataset[0], tokenizer)
    for message in dataset[0]["prompt"]:
        assert message["content"] in text["prompt"]
    assert dataset[0]["chosen"][0]["content"] in text["chosen"]


def test_import_stores_trees_with_ranked_siblings_as_branch_points(project, site_admin):
    tree = {
        "system": "Be kind.",
        "role": "user",
        "content": "Hello?",
        "replies": [
            {
                "role": "assistant",
                "content": "Hi!",
                "rank": 0,
                "replies": [
                    {
                        "role": "user",
                        "content": "How are you?",
                        "replies": [
                            {"role": "assistant", "content": "Fine.", "rank": 1},
                            {"role": "assistant", "content": "Great, thanks!", "rank": 0},
                            {"role": "assistant", "content": "Meh.", "rank": 1},
                        ],
                    }
                ],
            },
            {"role": "assistant", "content": "Go away.", "rank": 1},
        ],
    }
    plain = {"role": "user", "content": "Unranked", "replies": [{"role": "assistant", "content": "ok"}]}
    data = (json.dumps(tree) + "\n\n" + json.dumps(plain) + "\n").encode()
    outcome = importers.import_trees(project=project, actor=site_admin, filename="trees.jsonl", data=data)
    assert outcome.made == "2 conversation trees with 2 ranked branch points" and outcome.batch.kind == "conversations"
    assert ConversationNode.objects.count() == 9 and ConversationTask.objects.filter(overlap=0).count() == 2
    # Each ranked group is the branch point of its turn: the greeting's replies turn 0, the follow-up's turn 1.
    assert sorted(BranchPoint.objects.values_list("turn_index", flat=True)) == [0, 1]
    rows, points = conversation_snapshots.export_rows(project)
    assert points == 2 and len(rows) == 3
    deep = [r for r in rows if r["prompt"][-1]["content"] == "How are you?"]
    assert [m["content"] for m in deep[0]["prompt"]] == ["Be kind.", "Hello?", "Hi!", "How are you?"]
    assert {r["rejected"][0]["content"] for r in deep} == {"Fine.", "Meh."} and {r["chosen"][0]["content"] for r in deep} == {
        "Great, thanks!"
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"^line 2: invalid JSON"),
        ('{"role": "assistant", "content": "x"}', r"^line 2: field 'role': must be 'user'"),
        (
            '{"role": "user", "content": "x", "replies": [{"role": "assistant", "content": "a", "rank": 0}, {"role": "assistant", "content": "b"}]}',
            r"^line 2: field 'replies\[1\]\.rank': missing",
        ),
        (
            '{"role": "user", "content": "x", "replies": [{"role": "assistant", "content": " "}]}',
            r"^line 2: field 'replies\[0\]\.content': must be a non-empty string",
        ),
        ('{"role": "user", "content": "x", "colour": 1}', r"^line 2: field 'colour': unknown field"),
    ],
)
def test_a_bad_import_names_the_line_and_stores_nothing(project, site_admin, line, message):
    good = json.dumps({"role": "user", "content": "fine", "replies": [{"role": "assistant", "content": "ok"}]})
    with pytest.raises(Invalid, match=message):
        importers.import_trees(project=project, actor=site_admin, filename="trees.jsonl", data=(good + "\n" + line + "\n").encode())
    assert not ConversationTask.objects.exists() and not ConversationNode.objects.exists()
    assert not ImportBatch.objects.exists()


def test_api_flow_stale_turn_and_staff_only_routes(project, site_admin, people, api_for):
    admin = api_for(site_admin)
    created = admin.post(
        f"/api/v1/projects/{project.pk}/conversation-tasks/",
        {"conversations": [OPENING], "turns": 2, "candidates": 2, "overlap": 1},
        format="json",
    )
    assert created.status_code == 201, created.content
    bad = admin.post(f"/api/v1/projects/{project.pk}/conversation-tasks/", {"conversations": [{"messages": []}]}, format="json")
    assert bad.status_code == 400 and bad.json()["detail"].startswith("conversations[0].messages:")
    annotator = api_for(people[0])
    assert (
        annotator.post(f"/api/v1/projects/{project.pk}/conversation-tasks/", {"conversations": [OPENING]}, format="json").status_code == 403
    )
    state = annotator.post(f"/api/v1/projects/{project.pk}/conversations/next").json()
    point = BranchPoint.objects.get(pk=state["branch_point"]["id"])
    ids = fill_candidates(point)
    polled = annotator.get(f"/api/v1/conversation-assignments/{state['assignment_id']}/").json()
    assert [r["id"] for r in polled["branch_point"]["replies"]] == ids
    stale = annotator.post(
        f"/api/v1/conversation-assignments/{state['assignment_id']}/turn",
        {"branch_point_id": point.pk + 1000, "choice": ids[0]},
        format="json",
    )
    assert stale.status_code == 400 and stale.json()["detail"].startswith("branch_point_id:")
    typo = annotator.post(f"/api/v1/conversation-assignments/{state['assignment_id']}/turn", {"branch_point": point.pk}, format="json")
    assert typo.status_code == 400 and "branch_point" in typo.json()["detail"]
    judged = annotator.post(
        f"/api/v1/conversation-assignments/{state['assignment_id']}/turn", {"branch_point_id": point.pk, "choice": ids[1]}, format="json"
    )
    assert judged.status_code == 201 and judged.json()["judged_turns"] == 1
    assert judged.json()["history"][-1]["content"] == OPENING["followups"][0]
    repeat = annotator.post(
        f"/api/v1/conversation-assignments/{state['assignment_id']}/turn", {"branch_point_id": point.pk, "choice": ids[1]}, format="json"
    )
    assert repeat.status_code == 200
    progress = annotator.get(f"/api/v1/projects/{project.pk}/conversations/progress").json()
    assert progress["turns_judged"] == 1 and progress["finished"] == 0
    snap = admin.post(f"/api/v1/projects/{project.pk}/conversation-snapshots/")
    assert snap.status_code == 201
    download = admin.get(f"/api/v1/conversation-snapshots/{snap.json()['id']}/download")
    assert download.status_code == 200 and json.loads(b"".join(download.streaming_content).splitlines()[0])["chosen_node_id"] == ids[1]
    assert annotator.get(f"/api/v1/conversation-snapshots/{snap.json()['id']}/download").status_code == 403
    from django.core.files.uploadedfile import SimpleUploadedFile

    imports = f"/api/v1/projects/{project.pk}/imports/"
    imported = admin.post(imports, {"kind": "conversations", "file": SimpleUploadedFile("trees.jsonl", b"{}\n")}, format="multipart")
    assert imported.status_code == 400 and imported.json()["detail"].startswith("line 1: field 'role':")
    good = b'{"role": "user", "content": "Hi", "replies": [{"role": "assistant", "content": "a", "rank": 0}, {"role": "assistant", "content": "b", "rank": 1}]}\n'
    imported = admin.post(imports, {"kind": "conversations", "file": SimpleUploadedFile("trees.jsonl", good)}, format="multipart")
    assert imported.status_code == 201 and imported.json()["made"] == "1 conversation tree with 1 ranked branch point"
    assert imported.json()["kind"] == "conversations"
