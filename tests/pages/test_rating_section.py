"""The ratings section of the Snapshots page: staff queue answers for thumbs, see agreement and
each rater's balance, freeze the ratings into a KTO snapshot and download it; bad input names
the field and changes nothing."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from feedback_site.ratings import services
from feedback_site.ratings.models import RatingSnapshot, RatingTask
from tests.ratings.helpers import make_answers, toy_answers

pytestmark = pytest.mark.django_db


def test_queue_rate_freeze_and_download(login, ml_staff, project, make_user, add_member):
    make_answers(project, toy_answers(4))
    client = login(ml_staff)
    page = reverse("project-snapshots", args=[project.pk])
    response = client.post(reverse("project-rating-tasks", args=[project.pk]), {"ratings-overlap": "2"})
    assert response.status_code == 302 and RatingTask.objects.filter(project=project, overlap=2).count() == 4
    assert "4 answers queued for rating." in client.get(page).content.decode()

    raters = [make_user(f"page-rater-{i}") for i in range(2)]
    for rater in raters:
        add_member(project, rater, "annotator")
    for index, rater in enumerate(raters):
        while (lease := services.next_task(project=project, annotator=rater)) is not None:
            # The two raters agree on every answer but the last, where the second says the opposite.
            label = not lease.task.response.text[0].isdigit()
            if index == 1 and lease.task.response_id == RatingTask.objects.order_by("-id").first().response_id:
                label = not label
            services.submit(assignment_id=lease.pk, annotator=rater, label=label, time_spent_ms=1500)
    html = client.get(page).content.decode()
    assert "8 ratings on 4 queued answers" in html and "Krippendorff" in html and "page-rater-0" in html

    response = client.post(reverse("project-rating-snapshot", args=[project.pk]))
    assert response.status_code == 302
    snapshot = RatingSnapshot.objects.get(project=project)
    assert (snapshot.example_count, snapshot.split_count) == (3, 1)
    html = client.get(page).content.decode()
    assert f"Rating snapshot {snapshot.number}: {snapshot.desirable_count} up, {snapshot.undesirable_count} down." in html
    download = client.get(reverse("api-rating-snapshot-download", args=[snapshot.pk]))
    rows = [json.loads(line) for line in b"".join(download.streaming_content).decode().splitlines()]
    assert len(rows) == 3 and all(set(row) >= {"prompt", "completion", "label"} for row in rows)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ratings-overlap": "0"}, "overlap must be an integer between 1 and 20"),
        ({"ratings-overlap": "1", "ratings-generation_run_id": "999999"}, "has no answers in this project"),
        ({"ratings-overlap": "lots"}, "Enter a whole number."),
    ],
)
def test_bad_queue_requests_name_the_field_and_queue_nothing(login, ml_staff, project, data, message):
    make_answers(project, toy_answers(2))
    response = login(ml_staff).post(reverse("project-rating-tasks", args=[project.pk]), data)
    assert response.status_code == 400 and message in response.content.decode()
    assert not RatingTask.objects.exists()


def test_freezing_without_ratings_says_so(login, ml_staff, project):
    response = login(ml_staff).post(reverse("project-rating-snapshot", args=[project.pk]))
    assert response.status_code == 400 and "there are no decided ratings to snapshot yet" in response.content.decode()
    assert not RatingSnapshot.objects.exists()
