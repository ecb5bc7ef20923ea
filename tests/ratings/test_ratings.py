"""Thumbs up / down on single answers: the rating task kind on the one queue (its scenario suite
is tests/annotation/test_queue_spec.py, "rating-orm"), its API, bad input, and its KTO snapshots
that `datasets` loads and KTO trains on."""

from __future__ import annotations

import json

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feedback_site.annotation.models import Prompt, Response, Split
from feedback_site.core.errors import Conflict, Invalid, NotFound
from feedback_site.ratings import services
from feedback_site.ratings.models import Rating, RatingTask

from .helpers import is_good, make_answers, toy_answers

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(project, make_user, add_member):
    users = [make_user(f"rater-{i}") for i in range(3)]
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


def rate_all(project, annotator, decide=lambda text: is_good(text)) -> int:
    rated = 0
    while (lease := services.next_task(project=project, annotator=annotator)) is not None:
        services.submit(assignment_id=lease.pk, annotator=annotator, label=decide(lease.task.response.text))
        rated += 1
    return rated


def test_tasks_are_queued_once_per_answer_and_only_for_training_prompts(project, site_admin):
    make_answers(project, toy_answers(3))
    held_out = Prompt.objects.create(project=project, text="Held out?", split=Split.EVAL)
    Response.objects.create(prompt=held_out, text="not for training", sample_index=0)
    assert services.tasks_create(project=project, actor=site_admin, overlap=2) == 3
    assert services.tasks_create(project=project, actor=site_admin, overlap=2) == 0  # idempotent
    assert set(RatingTask.objects.values_list("overlap", flat=True)) == {2}
    extra = make_answers(project, toy_answers(1))
    assert services.tasks_create(project=project, actor=site_admin, response_ids=[extra[0].pk]) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"overlap": 0}, "overlap must be an integer between 1 and 20"),
        ({"response_ids": [999999]}, "are not answers of this project"),
        ({"response_ids": ["1"]}, "response_ids must be a list of response ids"),
        ({"generation_run_id": 999999}, "has no answers in this project"),
    ],
)
def test_bad_task_requests_name_the_problem(project, site_admin, options, message):
    make_answers(project, toy_answers(1))
    with pytest.raises(Invalid, match=message):
        services.tasks_create(project=project, actor=site_admin, **options)
    assert not RatingTask.objects.exists()


def test_rating_flow_idempotent_submit_skip_and_strangers(project, site_admin, people):
    make_answers(project, toy_answers(2))
    services.tasks_create(project=project, actor=site_admin, overlap=1)
    a, b, _ = people
    first = services.next_task(project=project, annotator=a)
    assert services.next_task(project=project, annotator=a).pk == first.pk  # a reload gets the same answer
    rating, created = services.submit(assignment_id=first.pk, annotator=a, label=False, reason="  wrong fact ", time_spent_ms=800)
    again, created_again = services.submit(assignment_id=first.pk, annotator=a, label=True)
    assert created and not created_again and again.pk == rating.pk and again.label is False and again.reason == "wrong fact"
    with pytest.raises(NotFound):
        services.submit(assignment_id=first.pk, annotator=b, label=True)
    second = services.next_task(project=project, annotator=a)
    services.skip(assignment_id=second.pk, annotator=a)
    with pytest.raises(Conflict):
        services.submit(assignment_id=second.pk, annotator=a, label=True)
    assert services.next_task(project=project, annotator=a) is None
    assert Rating.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "label"),
        ({"label": "yes"}, "label"),
        ({"label": 1}, "label"),
        ({"label": None}, "label"),
        ({"label": True, "reason": "x" * 2001}, "reason"),
        ({"label": True, "time_spent_ms": -5}, "time_spent_ms"),
        ({"label": True, "colour": "red"}, "colour"),
    ],
)
def test_a_bad_submit_is_a_400_naming_the_field_and_stores_nothing(project, site_admin, people, api_for, body, field):
    make_answers(project, toy_answers(1))
    services.tasks_create(project=project, actor=site_admin, overlap=1)
    api = api_for(people[0])
    lease = api.post(f"/api/v1/projects/{project.pk}/ratings/next").json()
    response = api.post(f"/api/v1/rating-assignments/{lease['assignment_id']}/submit", body, format="json")
    assert response.status_code == 400, response.content
    assert field in json.dumps(response.json())
    assert not Rating.objects.exists()


def test_the_api_serves_sanitised_answers_and_takes_thumbs(project, site_admin, people, api_for, make_user):
    prompt = Prompt.objects.create(
        project=project, text="Say *hi*", history=[{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]
    )
    Response.objects.create(prompt=prompt, text="**Hi** <script>alert(1)</script>", sample_index=0)
    services.tasks_create(project=project, actor=site_admin, overlap=1)
    api = api_for(people[0])
    body = api.post(f"/api/v1/projects/{project.pk}/ratings/next").json()
    assert "<strong>Hi</strong>" in body["answer_html"] and "<script>" not in body["answer_html"]
    assert body["prompt"]["html"] == "<p>Say <em>hi</em></p>\n" and [t["role"] for t in body["prompt"]["history"]] == ["user", "assistant"]
    assert "annotator" not in json.dumps(body) and "model" not in json.dumps(body)
    renew = api.post(f"/api/v1/rating-assignments/{body['assignment_id']}/renew")
    assert renew.status_code == 200
    submit = f"/api/v1/rating-assignments/{body['assignment_id']}/submit"
    first = api.post(submit, {"label": True, "reason": "friendly"}, format="json")
    again = api.post(submit, {"label": False}, format="json")
    assert (first.status_code, again.status_code) == (201, 200) and again.json()["label"] is True
    assert api.post(f"/api/v1/projects/{project.pk}/ratings/next").status_code == 204
    stranger = api_for(make_user("not-a-member"))
    assert stranger.post(f"/api/v1/projects/{project.pk}/ratings/next").status_code == 404


def test_snapshot_keeps_majority_labels_drops_even_splits_and_shows_the_balance(project, site_admin, people, api_for):
    answers = make_answers(project, toy_answers(4))
    services.tasks_create(project=project, actor=site_admin, overlap=2)
    votes = {answers[0].pk: (True, True), answers[1].pk: (False, False), answers[2].pk: (True, False), answers[3].pk: (False, False)}
    for index, user in enumerate(people[:2]):
        while (lease := services.next_task(project=project, annotator=user)) is not None:
            services.submit(assignment_id=lease.pk, annotator=user, label=votes[lease.task.response_id][index])
    snapshot, created = services.snapshot_create(project=project, actor=site_admin)
    assert created and (snapshot.example_count, snapshot.desirable_count, snapshot.undesirable_count, snapshot.split_count) == (3, 1, 2, 1)
    again, created_again = services.snapshot_create(project=project, actor=site_admin)
    assert not created_again and again.pk == snapshot.pk  # same content, same snapshot

    rows = [json.loads(line) for line in services.snapshot_file(snapshot).read_text().splitlines()]
    assert [row["response_id"] for row in rows] == [answers[0].pk, answers[1].pk, answers[3].pk]
    assert [row["label"] for row in rows] == [True, False, False]
    assert rows[0]["prompt"] == [{"role": "user", "content": answers[0].prompt.text}]
    assert rows[0]["completion"] == [{"role": "assistant", "content": answers[0].text}]
    assert {r["annotator"] for row in rows for r in row["ratings"]}.isdisjoint({str(u.pk) for u in people} | {u.username for u in people})

    api = api_for(site_admin)
    listed = api.get(f"/api/v1/projects/{project.pk}/rating-snapshots/").json()
    assert listed[0]["desirable_count"] == 1 and listed[0]["undesirable_count"] == 2
    download = api.get(f"/api/v1/rating-snapshots/{snapshot.pk}/download")
    assert download.status_code == 200 and b"".join(download.streaming_content) == services.snapshot_file(snapshot).read_bytes()


def test_a_changed_snapshot_file_is_refused(project, site_admin, people):
    make_answers(project, toy_answers(2))
    services.tasks_create(project=project, actor=site_admin, overlap=1)
    rate_all(project, people[0])
    snapshot, _ = services.snapshot_create(project=project, actor=site_admin)
    path = services.snapshot_file(snapshot)
    path.write_text(path.read_text().replace("true", "false"))
    with pytest.raises(Conflict, match="does not match its recorded hash"):
        services.snapshot_file(snapshot)


def test_no_decided_ratings_no_snapshot(project, site_admin):
    with pytest.raises(Invalid, match="no decided ratings"):
        services.snapshot_create(project=project, actor=site_admin)


def test_the_kto_file_loads_with_datasets_and_the_kto_loader(project, site_admin, people):
    from datasets import load_dataset

    from rlhf.training.data import load_kto_examples

    make_answers(project, toy_answers(6), system_prompt="Be brief.")
    services.tasks_create(project=project, actor=site_admin, overlap=1)
    rate_all(project, people[0])
    snapshot, _ = services.snapshot_create(project=project, actor=site_admin)
    path = services.snapshot_file(snapshot)
    dataset = load_dataset("json", data_files=str(path), split="train")
    assert len(dataset) == 6 and {"prompt", "completion", "label"} <= set(dataset.column_names)
    assert dataset[0]["prompt"][0] == {"role": "system", "content": "Be brief."}
    groups = load_kto_examples(path)
    assert [group[0]["label"] for group in groups] == [True, False, True, False, True, False]
