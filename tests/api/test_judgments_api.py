"""Issue 19, point 9: staff page through a project's judgments, filtered by annotator (the
pseudonym exports use, or a user id) and by time, and see annotators only as pseudonyms."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from feedback_site.annotation import services
from feedback_site.annotation.models import Judgment
from feedback_site.core.hashing import pseudonym

pytestmark = pytest.mark.django_db


def _judge(project, user, choice="left"):
    leased = services.assignment_next(project=project.pk, annotator=user)
    judgment, _ = services.judgment_submit(assignment_id=leased.assignment.pk, annotator=user, choice=choice)
    return judgment


@pytest.fixture
def judged(make_project, make_user, add_member, make_pairs, ml_staff):
    project = make_project(overlap=2)
    add_member(project, ml_staff, "ml_staff")
    make_pairs(project, 3)
    first, second = make_user("first"), make_user("second")
    for user in (first, second):
        add_member(project, user, "annotator")
    made = [_judge(project, first) for _ in range(3)] + [_judge(project, second, "right")]
    return project, first, second, made


def _staff(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_staff_page_through_judgments_with_pseudonyms(judged, ml_staff):
    project, first, second, made = judged
    api = _staff(ml_staff)
    url = f"/api/v1/projects/{project.pk}/judgments/"
    page = api.get(url, {"limit": 2}).json()
    assert page["count"] == 4 and [r["judgment_id"] for r in page["results"]] == [made[0].pk, made[1].pk] and page["next"]
    rest = api.get(url, {"limit": 2, "offset": 2}).json()
    assert [r["judgment_id"] for r in rest["results"]] == [made[2].pk, made[3].pk] and rest["next"] is None
    row = page["results"][0]
    assert row["annotator"] == pseudonym(project.pk, first.pk) and row["pair_id"] == made[0].pair_id
    assert row["preferred"] == made[0].preferred and row["choice"] == "left"
    # Annotators appear only as pseudonyms: no user id or username anywhere in the answer.
    text = str(page) + str(rest)
    assert "first" not in text and "second" not in text and "username" not in text and "annotator_id" not in text


def test_filters_by_pseudonym_user_id_and_time(judged, ml_staff):
    project, first, second, made = judged
    api = _staff(ml_staff)
    url = f"/api/v1/projects/{project.pk}/judgments/"
    by_pseudonym = api.get(url, {"annotator": pseudonym(project.pk, second.pk)}).json()
    assert [r["judgment_id"] for r in by_pseudonym["results"]] == [made[3].pk]
    assert api.get(url, {"annotator": str(first.pk)}).json()["count"] == 3
    assert api.get(url, {"annotator": "ann-0000000000000000"}).json()["count"] == 0
    # `since`: move the first two judgments an hour back.
    hour_ago = timezone.now() - timedelta(hours=1)
    Judgment.objects.filter(pk__in=[made[0].pk, made[1].pk]).update(created_at=hour_ago)
    since = (hour_ago + timedelta(minutes=30)).isoformat()
    assert [r["judgment_id"] for r in api.get(url, {"since": since}).json()["results"]] == [made[2].pk, made[3].pk]
    combined = api.get(url, {"since": since, "annotator": pseudonym(project.pk, first.pk)}).json()
    assert [r["judgment_id"] for r in combined["results"]] == [made[2].pk]
    bad = api.get(url, {"since": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_since"


def test_annotators_and_strangers_are_refused(judged, make_user):
    project, first, _, _ = judged
    url = f"/api/v1/projects/{project.pk}/judgments/"
    refused = _staff(first).get(url)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert _staff(make_user("stranger")).get(url).status_code == 404
    assert APIClient().get(url).status_code == 401
