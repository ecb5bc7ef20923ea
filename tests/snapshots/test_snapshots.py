"""Snapshots: aggregation, TRL format, immutability by content hash, pseudonymous raw export."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from feedback_site.annotation import services as queue
from feedback_site.annotation.models import Pair
from feedback_site.core.errors import Conflict, Invalid
from feedback_site.core.hashing import pseudonym
from feedback_site.snapshots.services import majority, snapshot_create, snapshot_file

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "votes, winner",
    [
        (["a"], "a"),
        (["a", "b", "a"], "a"),
        (["a", "b"], None),
        (["tie", "tie", "a"], "tie"),
        (["both_bad", "a", "b"], None),
        (["b", "b", "tie", "a"], "b"),
        ([], None),
    ],
)
def test_majority_rule(votes, winner):
    assert majority(votes) == winner


def _judge(project, user, choice_by_pair):
    """Lease every pair this user can get and answer in canonical terms (a/b/tie/both_bad)."""
    while (leased := queue.assignment_next(project=project, annotator=user)) is not None:
        a = leased.assignment
        want = choice_by_pair[a.pair_id]
        if want in ("a", "b"):
            left_is_a = not a.swapped
            choice = "left" if (want == "a") == left_is_a else "right"
        else:
            choice = want
        queue.judgment_submit(assignment_id=a.pk, annotator=user, choice=choice, rationale=f"{user.username} says {want}")


@pytest.fixture
def judged_project(make_project, make_user, add_member, make_pairs):
    project = make_project(overlap=3, criteria=["helpful"])
    pairs = make_pairs(project, 4)
    users = [make_user(f"j{i}") for i in range(3)]
    for user in users:
        add_member(project, user, "annotator")
    # pair0: a,a,b -> a   pair1: b,b,b -> b   pair2: a,b,tie -> dropped   pair3: tie,tie,a -> dropped (tie wins)
    plan = [("a", "a", "b"), ("b", "b", "b"), ("a", "b", "tie"), ("tie", "tie", "a")]
    for i, user in enumerate(users):
        _judge(project, user, {p.pk: plan[n][i] for n, p in enumerate(pairs)})
    return project, pairs, users


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_snapshot_aggregates_by_majority_in_trl_format(judged_project, site_admin):
    project, pairs, users = judged_project
    snapshot, created = snapshot_create(project=project, actor=site_admin)
    assert created and snapshot.number == 1
    assert (snapshot.pair_count, snapshot.preference_count, snapshot.dropped_count, snapshot.judgment_count) == (4, 2, 2, 12)

    rows = _read_jsonl(Path(snapshot.artifact_dir) / "preferences.jsonl")
    assert rows[0] == {
        "prompt": [{"role": "user", "content": "Question 0?"}],
        "chosen": [{"role": "assistant", "content": "Answer A0"}],
        "rejected": [{"role": "assistant", "content": "Answer B0"}],
    }
    assert rows[1]["chosen"][0]["content"] == "Answer B1"
    table = pq.read_table(Path(snapshot.artifact_dir) / "preferences.parquet")
    assert table.num_rows == 2 and table.column_names == ["prompt", "chosen", "rejected"]
    assert table.to_pylist() == rows

    raw = _read_jsonl(Path(snapshot.artifact_dir) / "judgments.jsonl")
    assert len(raw) == 12
    names = {u.username for u in users}
    assert all(r["annotator"].startswith("ann-") and r["annotator"] not in names for r in raw)
    assert {r["annotator"] for r in raw} == {pseudonym(project.pk, u.pk) for u in users}
    assert all(set(r) >= {"choice", "preferred", "order_shown", "strength", "criteria", "rationale", "time_spent_ms"} for r in raw)
    outcomes = [r["outcome"] for r in _read_jsonl(Path(snapshot.artifact_dir) / "pairs.jsonl")]
    assert outcomes == ["a", "b", None, "tie"]


def test_same_judgments_give_the_same_snapshot(judged_project, site_admin):
    project, _, _ = judged_project
    first, _ = snapshot_create(project=project, actor=site_admin)
    again, created = snapshot_create(project=project, actor=site_admin)
    assert not created and again.pk == first.pk


def test_a_new_judgment_makes_a_new_version_with_a_new_hash(judged_project, site_admin, make_user, add_member, make_pairs):
    project, _, _ = judged_project
    first, _ = snapshot_create(project=project, actor=site_admin)
    make_pairs(project, 1)
    late = make_user("late")
    add_member(project, late, "annotator")
    leased = queue.assignment_next(project=project, annotator=late).assignment
    queue.judgment_submit(assignment_id=leased.pk, annotator=late, choice="left")
    second, created = snapshot_create(project=project, actor=site_admin)
    assert created and second.number == 2 and second.content_hash != first.content_hash
    # The first snapshot's files are untouched.
    path, _ = snapshot_file(first, "jsonl")
    assert len(path.read_text().splitlines()) == 2


def test_tampered_file_is_detected_on_read(judged_project, site_admin):
    project, _, _ = judged_project
    snapshot, _ = snapshot_create(project=project, actor=site_admin)
    path = Path(snapshot.artifact_dir) / "preferences.jsonl"
    path.chmod(0o644)
    path.write_text(path.read_text().replace("Answer A0", "Answer Z0"))
    with pytest.raises(Conflict, match="does not match its recorded hash"):
        snapshot_file(snapshot, "jsonl")


def test_prelabelled_pairs_use_their_import_label(project, site_admin, make_pairs):
    pairs = make_pairs(project, 2, overlap=0)
    Pair.objects.filter(pk=pairs[0].pk).update(prelabel="b", is_complete=True)
    Pair.objects.filter(pk=pairs[1].pk).update(prelabel="a", is_complete=True)
    snapshot, _ = snapshot_create(project=project, actor=site_admin)
    rows = _read_jsonl(Path(snapshot.artifact_dir) / "preferences.jsonl")
    assert [r["chosen"][0]["content"] for r in rows] == ["Answer B0", "Answer A1"]
    with pytest.raises(Invalid, match="no judged or pre-labelled"):
        snapshot_create(project=project, actor=site_admin, include_prelabelled=False)


def test_annotators_cannot_snapshot(project, annotator, make_pairs):
    from feedback_site.core.errors import Forbidden

    with pytest.raises(Forbidden):
        snapshot_create(project=project, actor=annotator)
