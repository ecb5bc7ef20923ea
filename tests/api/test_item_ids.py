"""Issue 19, point 8: `assignments/next` names the item it leased (the pair's id, the `id` the
prompt was imported with, the stored responses on each side and which of A/B is on the left), on
both queue paths, so a client files judgments without ever matching texts."""

from __future__ import annotations

import json

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feedback_site.annotation import imports
from feedback_site.annotation.models import Judgment, Pair, Response
from tests.annotation.conftest import queue_path  # noqa: F401  (fixture: SQL and ORM paths)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("queue_path")]


def _import_pairs(project, actor, records) -> None:
    data = "\n".join(json.dumps(r) for r in records).encode()
    imports.import_file(project=project, actor=actor, kind="pairs", filename="pairs.jsonl", data=data, queue_for_annotation=True)


def _token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.mark.parametrize("auth", ["token", "session"])
def test_next_names_the_pair_the_import_id_and_the_stored_responses(auth, make_project, make_user, add_member, ml_staff, site_admin):
    project = make_project(overlap=1)
    add_member(project, ml_staff, "ml_staff")
    records = [{"id": f"item-{i}", "prompt": f"Q{i}?", "response_a": f"A{i}", "response_b": f"B{i}"} for i in range(6)]
    records.append({"id": 77, "prompt": "Q-int?", "response_a": "A-int", "response_b": "B-int"})
    records.append({"prompt": "Q-none?", "response_a": "A-none", "response_b": "B-none"})
    _import_pairs(project, site_admin, records)
    annotator = make_user("ids-annotator")
    add_member(project, annotator, "annotator")
    if auth == "token":
        api = _token_client(annotator)  # the fast lane on PostgreSQL's SQL path
    else:
        api = APIClient()
        api.force_authenticate(annotator)  # DRF's view
    expected_ids = {f"Q{i}?": f"item-{i}" for i in range(6)} | {"Q-int?": 77, "Q-none?": None}
    seen = set()
    while (response := api.post(f"/api/v1/projects/{project.pk}/assignments/next")).status_code == 200:
        body = response.json()
        pair = Pair.objects.get(pk=body["pair_id"])
        assert body["import_id"] == expected_ids[pair.prompt.text]
        assert body["shown_left"] in ("a", "b")
        left = Response.objects.get(pk=body["left_response_id"])
        right = Response.objects.get(pk=body["right_response_id"])
        # The ids name the stored responses whose texts are shown, and `shown_left` says which one.
        assert (left.text, right.text) == (body["left"]["text"], body["right"]["text"])
        stored = {"a": pair.response_a_id, "b": pair.response_b_id}
        assert body["left_response_id"] == stored[body["shown_left"]]
        assert body["right_response_id"] == stored["b" if body["shown_left"] == "a" else "a"]
        # Choosing "left" stores a preference for the response the client was told is on the left.
        submitted = api.post(f"/api/v1/assignments/{body['assignment_id']}/judgment", {"choice": "left"}, format="json")
        assert submitted.status_code == 201
        assert Judgment.objects.get(pk=submitted.json()["judgment_id"]).preferred == body["shown_left"]
        seen.add(pair.pk)
    assert response.status_code == 204
    assert seen == set(Pair.objects.filter(project=project).values_list("pk", flat=True))


def test_a_resumed_lease_names_the_same_item(project, annotator, make_pairs, site_admin):
    _import_pairs(project, site_admin, [{"id": "only", "prompt": "Q?", "response_a": "A", "response_b": "B"}])
    api = _token_client(annotator)
    first = api.post(f"/api/v1/projects/{project.pk}/assignments/next").json()
    again = api.post(f"/api/v1/projects/{project.pk}/assignments/next").json()
    keys = ("assignment_id", "pair_id", "import_id", "shown_left", "left_response_id", "right_response_id")
    assert [first[k] for k in keys] == [again[k] for k in keys] and first["import_id"] == "only"
