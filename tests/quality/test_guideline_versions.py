"""Guideline versions end to end: the annotator page shows the current text and version, each
judgment records the version it was made under, and snapshots export that number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feedback_site.annotation.models import Judgment
from feedback_site.projects.services import guideline_publish
from feedback_site.snapshots.services import snapshot_create

pytestmark = pytest.mark.django_db


def _judge_next(client, project) -> int:
    leased = client.post(f"/api/v1/projects/{project.pk}/assignments/next")
    assert leased.status_code in (200, 201), leased.content
    assignment_id = leased.json()["assignment_id"]
    submitted = client.post(f"/api/v1/assignments/{assignment_id}/judgment", {"choice": "left"}, content_type="application/json")
    assert submitted.status_code in (200, 201), submitted.content
    return assignment_id


def test_each_judgment_records_the_guideline_version_it_was_made_under(client, project, annotator, make_pairs, site_admin):
    make_pairs(project, 2, overlap=1)
    guideline_publish(project=project, author=site_admin, text="Version one: prefer **correct** answers.")
    client.force_login(annotator)
    page = client.get(f"/projects/{project.pk}/annotate/").content.decode()
    assert "correct" in page and "Version one" in page
    first = _judge_next(client, project)

    guideline_publish(project=project, author=site_admin, text="Version two: prefer concise answers.")
    page = client.get(f"/projects/{project.pk}/annotate/").content.decode()
    assert "Version two" in page and "Version one" not in page
    second = _judge_next(client, project)

    versions = dict(Judgment.objects.filter(assignment_id__in=[first, second]).values_list("assignment_id", "guideline_version__number"))
    assert versions == {first: 1, second: 2}
    snapshot, _ = snapshot_create(project=project, actor=site_admin)
    raw = [json.loads(line) for line in (Path(snapshot.artifact_dir) / "judgments.jsonl").read_text().splitlines()]
    assert sorted(r["guideline_version"] for r in raw) == [1, 2]
