"""The annotator API contract: status codes, shapes and what an annotator may see."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feedback_site.annotation.models import Assignment, Judgment
from tests.annotation.conftest import queue_path  # noqa: F401  (fixture: SQL and ORM paths)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("queue_path")]


@pytest.fixture
def client_for():
    def make(user) -> APIClient:
        client = APIClient()
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


def test_next_submit_repeat_and_empty_queue(project, annotator, make_pairs, client_for):
    make_pairs(project, 1, texts=lambda i: ("**bold** answer", "plain answer"))
    api = client_for(annotator)
    response = api.post(f"/api/v1/projects/{project.pk}/assignments/next")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "assignment_id",
        "pair_id",
        "import_id",
        "shown_left",
        "left_response_id",
        "right_response_id",
        "prompt",
        "left",
        "right",
        "criteria",
        "expires_at",
        "lease_seconds",
    }
    assert {body["left"]["text"], body["right"]["text"]} == {"**bold** answer", "plain answer"}
    bold = body["left"] if body["left"]["text"].startswith("**") else body["right"]
    assert bold["html"] == "<p><strong>bold</strong> answer</p>\n"
    # Nothing says which model wrote a response or who else judged (the ids are tests/api/test_item_ids.py).
    flat = str(body)
    assert "response_a" not in flat and "model" not in flat and "annotator" not in flat

    submit = f"/api/v1/assignments/{body['assignment_id']}/judgment"
    first = api.post(submit, {"choice": "left", "time_spent_ms": 900}, format="json")
    again = api.post(submit, {"choice": "right"}, format="json")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["judgment_id"] == first.json()["judgment_id"] and again.json()["choice"] == "left"
    assert Judgment.objects.count() == 1
    assert api.post(f"/api/v1/projects/{project.pk}/assignments/next").status_code == 204
    progress = api.get(f"/api/v1/projects/{project.pk}/my-progress").json()
    assert progress == {"judged": 1, "skipped": 0, "remaining_in_project": 0}


def test_bad_body_is_a_400_naming_the_field(project, annotator, make_pairs, client_for):
    make_pairs(project, 1)
    api = client_for(annotator)
    assignment = api.post(f"/api/v1/projects/{project.pk}/assignments/next").json()["assignment_id"]
    response = api.post(f"/api/v1/assignments/{assignment}/judgment", {"choice": "sideways"}, format="json")
    assert response.status_code == 400 and "choice" in str(response.json())
    assert Judgment.objects.count() == 0


def test_expired_and_taken_is_a_409_with_an_explanation(make_project, make_user, add_member, make_pairs, client_for):
    project = make_project(overlap=1)
    make_pairs(project, 1)
    slow, fast = make_user("slow"), make_user("fast")
    add_member(project, slow, "annotator")
    add_member(project, fast, "annotator")
    stale = client_for(slow).post(f"/api/v1/projects/{project.pk}/assignments/next").json()["assignment_id"]
    Assignment.objects.filter(pk=stale).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client_for(fast).post(f"/api/v1/projects/{project.pk}/assignments/next").status_code == 200
    response = client_for(slow).post(f"/api/v1/assignments/{stale}/judgment", {"choice": "left"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == "lease_expired" and "expired" in response.json()["detail"]


def test_skip_then_next(project, annotator, make_pairs, client_for):
    make_pairs(project, 2)
    api = client_for(annotator)
    first = api.post(f"/api/v1/projects/{project.pk}/assignments/next").json()["assignment_id"]
    assert api.post(f"/api/v1/assignments/{first}/skip").json() == {"assignment_id": first, "status": "skipped"}
    second = api.post(f"/api/v1/projects/{project.pk}/assignments/next").json()["assignment_id"]
    assert second != first
    assert api.post(f"/api/v1/assignments/{second}/renew").status_code == 200


def test_other_projects_and_other_peoples_assignments_do_not_exist(
    project, annotator, make_project, make_user, add_member, make_pairs, client_for
):
    other_project = make_project("Other")
    make_pairs(project, 1)
    stranger = make_user("stranger")
    add_member(other_project, stranger, "annotator")
    mine = client_for(annotator).post(f"/api/v1/projects/{project.pk}/assignments/next").json()["assignment_id"]
    api = client_for(stranger)
    assert api.post(f"/api/v1/projects/{project.pk}/assignments/next").status_code == 404
    assert api.post(f"/api/v1/assignments/{mine}/judgment", {"choice": "left"}, format="json").status_code == 404
    assert [p["id"] for p in api.get("/api/v1/projects/").json()] == [other_project.pk]


def test_annotators_cannot_reach_staff_endpoints(project, annotator, client_for):
    api = client_for(annotator)
    for path in ("members/", "imports/", "prompts/", "generation-runs/", "snapshots/", "model-versions/", "progress"):
        assert api.get(f"/api/v1/projects/{project.pk}/{path}").status_code == 403, path


def test_anonymous_is_refused_and_health_is_open(project, client):
    assert APIClient().post(f"/api/v1/projects/{project.pk}/assignments/next").status_code == 401
    assert client.get("/api/v1/health").json() == {"status": "ok"}


def test_openapi_schema_lists_the_annotator_routes(client, site_admin):
    client.force_login(site_admin)
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for route in (
        "/api/v1/projects/{project_id}/assignments/next",
        "/api/v1/assignments/{assignment_id}/judgment",
        "/api/v1/assignments/{assignment_id}/skip",
        "/api/v1/projects/{project_id}/snapshots/",
    ):
        assert route in paths
    assert client.get("/api/docs/").status_code == 200


def test_token_lane_and_drf_lane_agree_on_edge_cases(project, annotator, make_pairs, client_for, queue_path):
    """The hot calls answer token clients without DRF on PostgreSQL; every other case goes through
    DRF. Both must give the same answers."""
    make_pairs(project, 2)
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = bad.post(f"/api/v1/projects/{project.pk}/assignments/next")
    assert response.status_code == 401 and response.json()["error"] == "authentication_failed"
    assert bad.post("/api/v1/assignments/1/judgment", {"choice": "left"}, format="json").status_code == 401
    api = client_for(annotator)
    assignment = api.post(f"/api/v1/projects/{project.pk}/assignments/next").json()["assignment_id"]
    submit = f"/api/v1/assignments/{assignment}/judgment"
    broken = api.post(submit, data=b"{not json", content_type="application/json")
    assert broken.status_code == 400 and broken.json()["error"] == "parse_error"
    missing = api.post(submit, {}, format="json")
    assert missing.status_code == 400 and missing.json()["detail"] == {"choice": ["This field is required."]}
    bad_time = api.post(submit, {"choice": "left", "time_spent_ms": -1}, format="json")
    assert bad_time.status_code == 400 and "time_spent_ms" in bad_time.json()["detail"]
    assert api.post(submit, {"choice": "tie", "strength": "much"}, format="json").json()["error"] == "bad_strength"
    for body in ([1, 2], "left", {"choice": ["left"]}, {"choice": "left", "strength": {"x": 1}}, {"choice": "left", "criteria": [1]}):
        odd = api.post(submit, data=json.dumps(body), content_type="application/json")
        assert odd.status_code == 400 and odd.json()["error"] == "invalid", body
    # A form-encoded body (DRF parses it) is accepted too.
    form = api.post(submit, {"choice": "right", "time_spent_ms": "1500"})
    assert form.status_code == 201 and form.json()["time_spent_ms"] == 1500
    assert api.get(submit).status_code == 405
    assert Judgment.objects.get().choice == "right"


def test_session_callers_still_need_the_csrf_token(project, annotator, make_pairs, client):
    from django.test import Client

    make_pairs(project, 1)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(annotator)
    refused = strict.post(f"/api/v1/projects/{project.pk}/assignments/next")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert Assignment.objects.count() == 0
