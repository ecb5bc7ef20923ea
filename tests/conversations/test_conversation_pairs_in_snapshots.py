"""Judged conversation turns in the project's preference snapshots: every branch point's pairs,
with the whole history as the prompt, join the preference files DPO and reward models train on
(conversation_pairs.jsonl lists them with their ids); imported trees count as pre-labelled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feedback_site.conversations import importers, services
from feedback_site.core.errors import Invalid
from feedback_site.snapshots import services as snapshots

from .helpers import make_tasks, walk

pytestmark = pytest.mark.django_db


def _lines(snapshot, name: str) -> list[dict]:
    return [json.loads(line) for line in (Path(snapshot.artifact_dir) / name).read_text().splitlines()]


def test_judged_turns_become_preference_rows_with_their_history(project, site_admin, make_user, add_member):
    talker = make_user("talker")
    add_member(project, talker, "annotator")
    make_tasks(project, site_admin, overlap=1, turns=2, candidates=3)
    walk(services.next_task(project=project, annotator=talker), talker, pick=1)
    snapshot, _ = snapshots.snapshot_create(project=project, actor=site_admin)
    # Two turns, each a pick among 3: the picked reply beats the other two (2 pairs per turn).
    assert snapshot.conversation_pair_count == 4 and snapshot.preference_count == 4 and snapshot.pair_count == 0
    listed = _lines(snapshot, "conversation_pairs.jsonl")
    prefs = _lines(snapshot, "preferences.jsonl")
    assert [{k: row[k] for k in ("prompt", "chosen", "rejected")} for row in listed] == prefs
    second_turn = [row for row in listed if row["turn_index"] == 1]
    # The second turn's prompt is the whole conversation so far: system, user, the chosen reply, the follow-up.
    assert [m["role"] for m in second_turn[0]["prompt"]] == ["system", "user", "assistant", "user"]
    assert second_turn[0]["prompt"][2]["content"] == listed[0]["chosen"][0]["content"]


def test_imported_trees_are_pre_labelled(project, site_admin):
    tree = {
        "role": "user",
        "content": "Hello?",
        "replies": [{"role": "assistant", "content": "Hi!", "rank": 0}, {"role": "assistant", "content": "Go away.", "rank": 1}],
    }
    importers.import_trees(project=project, actor=site_admin, filename="t.jsonl", data=(json.dumps(tree) + "\n").encode())
    snapshot, _ = snapshots.snapshot_create(project=project, actor=site_admin)
    assert snapshot.conversation_pair_count == 1
    assert _lines(snapshot, "preferences.jsonl") == [
        {
            "prompt": [{"role": "user", "content": "Hello?"}],
            "chosen": [{"role": "assistant", "content": "Hi!"}],
            "rejected": [{"role": "assistant", "content": "Go away."}],
        }
    ]
    with pytest.raises(Invalid, match="no judged or pre-labelled pairs, rankings or conversation turns"):
        snapshots.snapshot_create(project=project, actor=site_admin, include_prelabelled=False)


def test_staff_queue_and_freeze_conversations_from_the_snapshots_page(project, site_admin, make_user, add_member, client):
    from feedback_site.annotation.models import Prompt
    from feedback_site.conversations.models import ConversationSnapshot, ConversationTask

    for i in range(3):
        Prompt.objects.create(project=project, text=f"Tell me about topic {i}.")
    client.force_login(site_admin)
    url = f"/projects/{project.pk}/snapshots/conversations/queue"
    bad = client.post(url, {"conversations-turns": "11", "conversations-candidates": "2", "conversations-overlap": "1"})
    assert bad.status_code == 400 and "turns: must be an integer between 1 and 10" in bad.content.decode()
    assert not ConversationTask.objects.exists()
    done = client.post(
        url,
        {"conversations-turns": "2", "conversations-candidates": "3", "conversations-overlap": "1", "conversations-allow_user_turns": "on"},
        follow=True,
    )
    assert "3 conversations queued." in done.content.decode()
    assert ConversationTask.objects.filter(turns=2, candidates=3, allow_user_turns=True).count() == 3
    again = client.post(url, {"conversations-turns": "2", "conversations-candidates": "3", "conversations-overlap": "1"})
    assert again.status_code == 400 and "already queued as a conversation" in again.content.decode()

    # An annotator who always picks the reply shown first, and one who picks the last.
    first, last = make_user("first-picker"), make_user("last-picker")
    for user in (first, last):
        add_member(project, user, "annotator")
    ConversationTask.objects.update(turns=1, overlap=2)
    for user, pick in ((first, 0), (last, 2)):
        while (lease := services.next_task(project=project, annotator=user)) is not None:
            walk(lease, user, pick=pick)
    frozen = client.post(f"/projects/{project.pk}/snapshots/conversations/freeze", follow=True)
    assert "Conversation snapshot 1: 12 pairs from 6 turns." in frozen.content.decode()
    assert ConversationSnapshot.objects.get().example_count == 12
    html = client.get(f"/projects/{project.pk}/snapshots/").content.decode()
    assert 'data-annotator="first-picker"' in html and "3 of 3 conversations" in html


def test_position_bias_of_picks_is_flagged(project, site_admin, make_user, add_member):
    from feedback_site.quality.conversation_stats import conversation_statistics

    first, varied = make_user("always-first"), make_user("varied")
    for user in (first, varied):
        add_member(project, user, "annotator")
    make_tasks(project, site_admin, 12, overlap=2, turns=1, candidates=3)
    for user, picks in ((first, [0] * 12), (varied, [0, 1, 2] * 4)):
        for pick in picks:
            walk(services.next_task(project=project, annotator=user), user, pick=pick)
    rows = {row["annotator"]: row for row in conversation_statistics(project)["annotators"]}
    assert rows["always-first"]["turns"] == 12 and rows["always-first"]["first_shown_rate"] == 1.0
    assert rows["always-first"]["position_biased"] and rows["always-first"]["position_p"] < 1e-4
    assert rows["varied"]["first_shown_rate"] == pytest.approx(1 / 3) and not rows["varied"]["position_biased"]
