"""Thumbs from the playground: staff rate finished answers (rating again changes it), the chat
shows each caller's own thumbs, bad input is a 400 naming the field, and rating snapshots carry
the playground's ratings with the conversation the answer replied to."""

from __future__ import annotations

import json

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feedback_site.playground.models import Chat, ChatMessage
from feedback_site.ratings import services as rating_services
from feedback_site.ratings.models import AnswerRating

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(project, site_admin):
    chat = Chat.objects.create(project=project, created_by=site_admin, system_prompt="Be brief.", version_a=project.current_policy)
    for turn, (question, answer) in enumerate([("Hi?", "Hello!"), ("What is 2+2?", "5")]):
        ChatMessage.objects.create(chat=chat, lane=0, turn=turn, role="user", content=question)
        ChatMessage.objects.create(chat=chat, lane=0, turn=turn, role="assistant", content=answer, model_version=project.current_policy)
    return chat


def _api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def _answers(chat):
    return list(ChatMessage.objects.filter(chat=chat, role="assistant").order_by("turn"))


def test_staff_rate_answers_and_rating_again_changes_it(chat, site_admin, ml_staff):
    hello, wrong = _answers(chat)
    api = _api(ml_staff)
    url = f"/api/v1/playground/chats/{chat.pk}/messages/{wrong.pk}/rating"
    assert api.post(url, {"label": True}, format="json").status_code == 201
    changed = api.post(url, {"label": False, "reason": "2+2 is 4"}, format="json")
    assert changed.status_code == 200 and changed.json() == {"message_id": wrong.pk, "label": False, "reason": "2+2 is 4"}
    assert AnswerRating.objects.count() == 1
    rating = AnswerRating.objects.get()
    # The conversation the answer replied to: system prompt, the earlier turn, then its question.
    assert rating.conversation == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi?"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert rating.answer == "5" and rating.model_version_id == chat.version_a_id

    _api(site_admin).post(f"/api/v1/playground/chats/{chat.pk}/messages/{hello.pk}/rating", {"label": True}, format="json")
    mine = {m["id"]: m["my_rating"] for m in api.get(f"/api/v1/playground/chats/{chat.pk}/").json()["messages"] if m["role"] == "assistant"}
    assert mine == {hello.pk: None, wrong.pk: False}  # each caller sees their own thumbs


@pytest.mark.parametrize(
    ("body", "target", "field"),
    [
        ({}, "answer", "label"),
        ({"label": "up"}, "answer", "label"),
        ({"label": True, "colour": 1}, "answer", "colour"),
        ({"label": True}, "question", "finished answer"),
        ({"label": True}, "missing", "No such message"),
    ],
)
def test_bad_ratings_are_refused_naming_the_problem(chat, ml_staff, body, target, field):
    question = ChatMessage.objects.filter(chat=chat, role="user").first()
    message_id = {"answer": _answers(chat)[0].pk, "question": question.pk, "missing": 999999}[target]
    response = _api(ml_staff).post(f"/api/v1/playground/chats/{chat.pk}/messages/{message_id}/rating", body, format="json")
    assert response.status_code in (400, 404) and field in json.dumps(response.json())
    assert not AnswerRating.objects.exists()


def test_annotators_cannot_rate_in_the_playground(chat, annotator):
    answer = _answers(chat)[0]
    response = _api(annotator).post(f"/api/v1/playground/chats/{chat.pk}/messages/{answer.pk}/rating", {"label": True}, format="json")
    assert response.status_code in (403, 404)
    assert not AnswerRating.objects.exists()


def test_rating_snapshots_carry_playground_thumbs_with_their_conversation(chat, project, site_admin, ml_staff):
    hello, wrong = _answers(chat)
    for user, message, label in [(ml_staff, hello, True), (ml_staff, wrong, False), (site_admin, wrong, True)]:
        _api(user).post(f"/api/v1/playground/chats/{chat.pk}/messages/{message.pk}/rating", {"label": label}, format="json")
    snapshot, _ = rating_services.snapshot_create(project=project, actor=site_admin)
    # "5" got one up and one down: an even split, left out and counted.
    assert (snapshot.example_count, snapshot.desirable_count, snapshot.split_count) == (1, 1, 1)
    [row] = [json.loads(line) for line in rating_services.snapshot_file(snapshot).read_text().splitlines()]
    assert row["source"] == "playground" and row["source_id"] == str(hello.pk) and row["label"] is True
    assert row["prompt"][-1] == {"role": "user", "content": "Hi?"} and row["completion"] == [{"role": "assistant", "content": "Hello!"}]
