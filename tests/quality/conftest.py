"""Helpers that write judgments in bulk (assignment + judgment rows, pair counters), so quality
tests can build exact, hand-checkable situations quickly."""

from __future__ import annotations

from datetime import timedelta

import pytest


def choice_for(preferred: str, swapped: bool) -> str:
    if preferred in ("tie", "both_bad"):
        return preferred
    left = "b" if swapped else "a"
    return "left" if preferred == left else "right"


def bulk_judge(rows, *, when=None):
    """rows: dicts with pair, user, preferred and optional swapped, time_ms, rationale, at.
    Writes submitted assignments and judgments with bulk inserts and bumps pair counters
    (raising the pair's overlap when needed so the never-over-judged constraint holds)."""
    from django.utils import timezone

    from feedback_site.annotation.models import Assignment, AssignmentStatus, Judgment, Pair

    now = when or timezone.now()
    assignments = Assignment.objects.bulk_create(
        [
            Assignment(
                pair=r["pair"],
                annotator=r["user"],
                status=AssignmentStatus.SUBMITTED,
                swapped=r.get("swapped", False),
                expires_at=now + timedelta(minutes=10),
                finished_at=now,
            )
            for r in rows
        ],
        batch_size=5000,
    )
    judgments = Judgment.objects.bulk_create(
        [
            Judgment(
                assignment=a,
                pair=r["pair"],
                annotator=r["user"],
                preferred=r["preferred"],
                choice=choice_for(r["preferred"], r.get("swapped", False)),
                swapped=r.get("swapped", False),
                time_spent_ms=r.get("time_ms", 10_000),
                rationale=r.get("rationale", ""),
                guideline_version=r.get("guideline"),
            )
            for a, r in zip(assignments, rows)
        ],
        batch_size=5000,
    )
    stamps = [(j.pk, r["at"]) for j, r in zip(judgments, rows) if r.get("at") is not None]
    for pk, at in stamps:
        Judgment.objects.filter(pk=pk).update(created_at=at)
    counts: dict[int, int] = {}
    for r in rows:
        counts[r["pair"].pk] = counts.get(r["pair"].pk, 0) + 1
    for pair_id, n in counts.items():
        pair = Pair.objects.get(pk=pair_id)
        total = pair.judgment_count + n
        Pair.objects.filter(pk=pair_id).update(
            judgment_count=total, overlap=max(pair.overlap, total), is_complete=total >= max(pair.overlap, total)
        )
    return judgments


@pytest.fixture
def judge():
    return bulk_judge


@pytest.fixture
def team(make_user, project, add_member):
    """Three human annotators and one simulated annotator in `project`."""
    from feedback_site.projects.models import Membership

    users = {}
    for name in ("alice", "bob", "carol", "robot"):
        users[name] = make_user(name)
        add_member(project, users[name], "annotator")
    Membership.objects.filter(project=project, user=users["robot"]).update(is_simulated=True)
    return users
