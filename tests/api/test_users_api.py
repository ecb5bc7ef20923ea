"""Issue 19, point 7: site admins manage accounts and tokens over the API (no shell on the
server); project admins add those accounts to their project. Secrets are shown once."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feedback_site.core.models import AuditEntry
from feedback_site.projects.models import Membership

pytestmark = pytest.mark.django_db


def _as(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def test_an_outside_tool_onboards_an_annotator_end_to_end(site_admin, project, make_user, add_member, make_pairs):
    admin_tool = _as(site_admin)
    created = admin_tool.post("/api/v1/users/", {"username": "new-annotator", "email": "n@example.org"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["username"] == "new-annotator" and body["has_token"] and body["password"] is None and not body["is_site_admin"]
    user = get_user_model().objects.get(pk=body["id"])
    assert not user.has_usable_password() and not user.is_staff and not user.is_superuser
    assert Token.objects.get(user=user).key == body["token"]

    # The project's admin (a project role, not a site admin) adds the new account to the project.
    project_admin = make_user("padmin")
    add_member(project, project_admin, "admin")
    added = _as(project_admin).post(
        f"/api/v1/projects/{project.pk}/members/", {"username": "new-annotator", "role": "annotator"}, format="json"
    )
    assert added.status_code == 201 and added.json() == {"user_id": user.pk, "username": "new-annotator", "role": "annotator"}
    assert Membership.objects.get(project=project, user=user).role == "annotator"

    # With the token it was given once, the annotator works through the API.
    make_pairs(project, 1)
    annotator = APIClient()
    annotator.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert annotator.post(f"/api/v1/projects/{project.pk}/assignments/next").status_code == 200

    # Rotating gives a new key (shown once) and the old one stops working.
    rotated = admin_tool.post(f"/api/v1/users/{user.pk}/token")
    assert rotated.status_code == 201 and rotated.json()["user_id"] == user.pk and rotated.json()["token"] != body["token"]
    assert annotator.get(f"/api/v1/projects/{project.pk}/my-progress").status_code == 401
    fresh = APIClient()
    fresh.credentials(HTTP_AUTHORIZATION=f"Token {rotated.json()['token']}")
    assert fresh.get(f"/api/v1/projects/{project.pk}/my-progress").status_code == 200

    # Revoking ends API access.
    revoked = admin_tool.post(f"/api/v1/users/{user.pk}/tokens/revoke")
    assert revoked.status_code == 200 and revoked.json() == {"user_id": user.pk, "revoked": 1}
    assert fresh.get(f"/api/v1/projects/{project.pk}/my-progress").status_code == 401

    # The list never shows a secret again.
    listed = admin_tool.get("/api/v1/users/", {"username": "new-annot"}).json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == user.pk and listed["results"][0]["has_token"] is False
    assert "token" not in listed["results"][0] and "password" not in listed["results"][0]

    actions = list(AuditEntry.objects.filter(target_id=str(user.pk)).order_by("id").values_list("action", flat=True))
    assert actions[0] == "user.create" and "user.token_issue" in actions and actions[-1] == "user.token_revoke"


def test_a_generated_password_is_returned_once_and_logs_in(site_admin):
    admin_tool = _as(site_admin)
    body = admin_tool.post(
        "/api/v1/users/", {"username": "pageuser", "generate_password": True, "issue_token": False}, format="json"
    ).json()
    assert body["token"] is None and len(body["password"]) >= 20
    assert not Token.objects.filter(user_id=body["id"]).exists()
    assert APIClient().login(username="pageuser", password=body["password"])
    again = admin_tool.get("/api/v1/users/", {"username": "pageuser"}).json()["results"][0]
    assert "password" not in again


def test_bad_requests_are_named(site_admin, make_user):
    admin_tool = _as(site_admin)
    make_user("taken")
    dup = admin_tool.post("/api/v1/users/", {"username": "TAKEN"}, format="json")
    assert dup.status_code == 409 and dup.json()["error"] == "username_taken"
    bad = admin_tool.post("/api/v1/users/", {"username": "has space"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"] == "bad_username"
    # Accounts made here are never site admins, and an unknown field is refused, not ignored.
    escalate = admin_tool.post("/api/v1/users/", {"username": "sneaky", "is_staff": True}, format="json")
    assert escalate.status_code == 400 and escalate.json()["error"] == "bad_field"
    assert not get_user_model().objects.filter(username="sneaky").exists()
    assert admin_tool.post("/api/v1/users/999999/token").json()["error"] == "not_found"


def test_only_site_admins_manage_users(project, make_user, add_member):
    project_admin = make_user("padmin")
    add_member(project, project_admin, "admin")
    victim = make_user("victim")
    api = _as(project_admin)
    for method, url in (
        ("get", "/api/v1/users/"),
        ("post", "/api/v1/users/"),
        ("post", f"/api/v1/users/{victim.pk}/token"),
        ("post", f"/api/v1/users/{victim.pk}/deactivate"),
    ):
        response = getattr(api, method)(url, {"username": "x"} if method == "post" else None, format="json")
        assert response.status_code == 403 and response.json()["error"] == "forbidden", url
    assert not Token.objects.filter(user=victim).exists() and get_user_model().objects.filter(username="x").count() == 0
    assert APIClient().get("/api/v1/users/").status_code == 401


def test_deactivating_ends_access_and_a_deactivated_user_gets_no_token(site_admin, make_user):
    admin_tool = _as(site_admin)
    user = make_user("leaver")
    token = Token.objects.create(user=user)
    response = admin_tool.post(f"/api/v1/users/{user.pk}/deactivate")
    assert response.status_code == 200 and response.json()["is_active"] is False and response.json()["has_token"] is False
    assert not Token.objects.filter(key=token.key).exists()
    refused = admin_tool.post(f"/api/v1/users/{user.pk}/token")
    assert refused.status_code == 409 and refused.json()["error"] == "inactive_user"
