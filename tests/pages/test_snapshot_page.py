"""Freezing judgments on the snapshot page and downloading the files it links to."""

from __future__ import annotations

import io
import json
import re

import pyarrow.parquet as pq
import pytest
from django.urls import reverse

from feedback_site.annotation.services import assignment_next, judgment_submit
from feedback_site.snapshots.models import Snapshot
from feedback_site.snapshots.services import snapshot_build

pytestmark = pytest.mark.django_db


def _judge(project, annotator, n: int, choice: str = "left"):
    for _ in range(n):
        leased = assignment_next(project=project, annotator=annotator)
        judgment_submit(assignment_id=leased.assignment.pk, annotator=annotator, choice=choice)


def test_create_snapshot_and_download_every_file(login, ml_staff, annotator, project, make_pairs):
    make_pairs(project, 3)
    _judge(project, annotator, 3)
    client = login(ml_staff)
    url = reverse("project-snapshots", args=[project.pk])
    response = client.post(url, {"aggregation": "majority", "include_prelabelled": "on", "note": "round <1>"})
    assert response.status_code == 302
    pending = Snapshot.objects.get(project=project)
    assert pending.status == "pending"
    html = client.get(url).content.decode()
    assert "Snapshot 1 is being built in the background" in html and "Pending" in html
    snapshot = snapshot_build(pending.pk)  # what the `snapshots.build` job does, run in-process
    assert (snapshot.number, snapshot.pair_count, snapshot.preference_count, snapshot.judgment_count) == (1, 3, 3, 3)
    assert snapshot.note == "round <1>" and snapshot.created_by == ml_staff

    html = client.get(url).content.decode()
    assert "Ready" in html
    assert snapshot.content_hash[:12] in html
    assert "round &lt;1&gt;" in html

    links = re.findall(r'href="([^"]*/download\?file=[a-z]+)"', html)
    assert sorted(link.rsplit("=", 1)[1] for link in links) == ["jsonl", "judgments", "pairs", "parquet"]
    bodies = {}
    for link in links:
        download = client.get(link)
        assert download.status_code == 200, link
        assert "attachment" in download["Content-Disposition"]
        bodies[link.rsplit("=", 1)[1]] = b"".join(download.streaming_content)

    rows = [json.loads(line) for line in bodies["jsonl"].decode().splitlines()]
    assert len(rows) == 3 and {"prompt", "chosen", "rejected"} <= set(rows[0])
    assert pq.read_table(io.BytesIO(bodies["parquet"])).num_rows == 3
    assert len(bodies["judgments"].decode().splitlines()) == 3
    assert "ann1" not in bodies["judgments"].decode()  # pseudonymous annotator ids
    assert len(bodies["pairs"].decode().splitlines()) == 3


def test_same_judgments_give_no_second_snapshot(login, site_admin, annotator, project, make_pairs):
    make_pairs(project, 2)
    _judge(project, annotator, 2)
    client = login(site_admin)
    url = reverse("project-snapshots", args=[project.pk])
    assert client.post(url, {"aggregation": "majority", "include_prelabelled": "on"}).status_code == 302
    first = snapshot_build(Snapshot.objects.get(project=project).pk)
    assert client.post(url, {"aggregation": "majority", "include_prelabelled": "on"}).status_code == 302
    second = snapshot_build(Snapshot.objects.get(project=project, number=2).pk)
    # Built in the background, so the hash is known only at the end: the second snapshot says it
    # is the same as the first and shares its folder (no second copy of the files).
    assert second.content_hash == first.content_hash and second.artifact_dir == first.artifact_dir
    assert "same content as snapshot 1" in client.get(url).content.decode()


def test_empty_project_explains_why_400(login, site_admin, project):
    response = login(site_admin).post(reverse("project-snapshots", args=[project.pk]), {"aggregation": "majority"})
    assert response.status_code == 400
    html = response.content.decode()
    assert (
        "No snapshot was made." in html
        and "there are no judged or pre-labelled pairs, rankings or conversation turns to snapshot yet" in html
    )
    assert not Snapshot.objects.exists()


def test_bad_aggregation_is_a_form_error(login, site_admin, annotator, project, make_pairs):
    make_pairs(project, 1)
    _judge(project, annotator, 1)
    response = login(site_admin).post(reverse("project-snapshots", args=[project.pk]), {"aggregation": "mean"})
    assert response.status_code == 400
    assert not Snapshot.objects.exists()


def test_annotator_cannot_snapshot_or_download(login, site_admin, annotator, project, make_pairs):
    make_pairs(project, 1)
    _judge(project, annotator, 1)
    client = login(annotator)
    assert client.post(reverse("project-snapshots", args=[project.pk]), {"aggregation": "majority"}).status_code == 403
    assert not Snapshot.objects.exists()
    from feedback_site.snapshots.services import snapshot_create

    snapshot, _ = snapshot_create(project=project, actor=site_admin)
    assert client.get(reverse("api-snapshot-download", args=[snapshot.pk]) + "?file=jsonl").status_code == 403
