"""Accounts and data safety: login throttling, API token revocation, deactivation that keeps
work, users that cannot be deleted, audit entries for membership changes."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from feedback_site.annotation.models import Judgment
from feedback_site.core.models import AuditEntry

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def _login(client, username, password, address="10.0.0.1"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


class TestLoginThrottling:
    def test_five_failures_lock_the_username_from_that_address(self, make_user, settings):
        settings.LOGIN_THROTTLE_FAILURES = 5
        make_user("alice", password=PASSWORD)
        client = Client()
        for _ in range(5):
            response = _login(client, "alice", "wrong")
            assert response.status_code == 200 and "_auth_user_id" not in client.session
            assert b"Please enter a correct username and password" in response.content
        # Locked: even the right password is refused, with a clear message.
        response = _login(client, "alice", PASSWORD)
        assert response.status_code == 200 and "_auth_user_id" not in client.session
        assert b"Too many failed logins" in response.content and b"Try again in 15 minutes" in response.content
        # Another address, or another username from this address, is not locked.
        assert _login(Client(), "alice", PASSWORD, address="10.0.0.2").status_code == 302
        make_user("bob", password=PASSWORD)
        assert _login(Client(), "bob", PASSWORD).status_code == 302

    def test_a_success_resets_the_count(self, make_user, settings):
        settings.LOGIN_THROTTLE_FAILURES = 3
        make_user("carol", password=PASSWORD)
        for _ in range(2):
            _login(Client(), "carol", "wrong")
        assert _login(Client(), "carol", PASSWORD).status_code == 302
        for _ in range(2):
            _login(Client(), "carol", "wrong")
        assert _login(Client(), "carol", PASSWORD).status_code == 302

    def test_the_window_expires(self, make_user, settings, monkeypatch):
        import time

        settings.LOGIN_THROTTLE_FAILURES, settings.LOGIN_THROTTLE_WINDOW = 2, 900
        make_user("dave", password=PASSWORD)
        for _ in range(2):
            _login(Client(), "dave", "wrong")
        assert b"Too many failed logins" in _login(Client(), "dave", PASSWORD).content
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 901)
        assert _login(Client(), "dave", PASSWORD).status_code == 302

    def test_admin_login_is_throttled_too(self, make_user, settings):
        settings.LOGIN_THROTTLE_FAILURES = 2
        make_user("root", superuser=True, password=PASSWORD)
        client = Client()
        for _ in range(2):
            client.post(reverse("admin:login"), {"username": "root", "password": "wrong"}, REMOTE_ADDR="10.0.0.9")
        response = client.post(reverse("admin:login"), {"username": "root", "password": PASSWORD}, REMOTE_ADDR="10.0.0.9")
        assert response.status_code == 200 and b"Too many failed logins" in response.content


class TestTokenRevocation:
    def _api(self, token):
        return Client(HTTP_AUTHORIZATION=f"Token {token}")

    def test_site_admin_revokes_a_token_and_it_gets_401(self, make_user, site_admin):
        user = make_user("worker")
        token = Token.objects.create(user=user).key
        assert self._api(token).get("/api/v1/projects/").status_code == 200
        admin_token = Token.objects.create(user=site_admin).key
        response = self._api(admin_token).post(f"/api/v1/users/{user.pk}/tokens/revoke")
        assert response.status_code == 200 and response.json() == {"user_id": user.pk, "revoked": 1}
        answer = self._api(token).get("/api/v1/projects/")
        assert answer.status_code == 401 and answer.json()["detail"] == "Invalid token."
        entry = AuditEntry.objects.get(action="user.token_revoke")
        assert entry.actor == site_admin and entry.target_id == str(user.pk)

    def test_non_admins_cannot_revoke(self, make_user):
        user, other = make_user("u1"), make_user("u2")
        victim_token = Token.objects.create(user=other).key
        response = self._api(Token.objects.create(user=user).key).post(f"/api/v1/users/{other.pk}/tokens/revoke")
        assert response.status_code == 403
        assert Token.objects.filter(key=victim_token).exists()

    def test_admin_action_revokes(self, make_user):
        root = make_user("root", superuser=True)
        user = make_user("worker")
        token = Token.objects.create(user=user).key
        client = Client()
        client.force_login(root)
        response = client.post(
            reverse("admin:auth_user_changelist"), {"action": "revoke_api_tokens", "_selected_action": [user.pk]}, follow=True
        )
        assert response.status_code == 200 and b"Revoked 1 token" in response.content
        assert self._api(token).get("/api/v1/projects/").status_code == 401


@pytest.fixture
def judged(project, annotator, make_pairs):
    from feedback_site.annotation import services

    make_pairs(project, 2)
    assignment = services.assignment_next(project=project, annotator=annotator).assignment
    judgment, _ = services.judgment_submit(assignment_id=assignment.pk, annotator=annotator, choice="left", strength="clear")
    return judgment


class TestWorkIsKept:
    def test_deactivating_a_user_keeps_their_judgments_and_ends_access(self, judged, annotator, make_user):
        root = make_user("root", superuser=True)
        token = Token.objects.create(user=annotator).key
        client = Client()
        client.force_login(root)
        response = client.post(
            reverse("admin:auth_user_changelist"), {"action": "deactivate_users", "_selected_action": [annotator.pk]}, follow=True
        )
        assert b"their work is kept" in response.content
        annotator.refresh_from_db()
        assert not annotator.is_active
        assert Judgment.objects.filter(pk=judged.pk, annotator=annotator).exists()
        assert Client(HTTP_AUTHORIZATION=f"Token {token}").get("/api/v1/projects/").status_code == 401
        assert _login(Client(), annotator.username, PASSWORD).status_code == 200  # refused: stays on the form
        assert AuditEntry.objects.filter(action="user.deactivate", target_id=str(annotator.pk), actor=root).exists()

    def test_the_admin_cannot_delete_a_user(self, judged, annotator, make_user):
        root = make_user("root", superuser=True)
        client = Client()
        client.force_login(root)
        assert client.get(reverse("admin:auth_user_delete", args=[annotator.pk])).status_code == 403
        assert client.post(reverse("admin:auth_user_delete", args=[annotator.pk]), {"post": "yes"}).status_code == 403
        response = client.post(
            reverse("admin:auth_user_changelist"), {"action": "delete_selected", "_selected_action": [annotator.pk], "post": "yes"}
        )
        assert response.status_code in (200, 302)
        assert Judgment.objects.filter(pk=judged.pk).exists() and annotator.__class__.objects.filter(pk=annotator.pk).exists()

    def test_judgments_cannot_be_deleted_from_the_admin(self, judged, make_user):
        root = make_user("root", superuser=True)
        client = Client()
        client.force_login(root)
        url = reverse("admin:annotation_judgment_delete", args=[judged.pk])
        assert client.post(url, {"post": "yes"}).status_code == 403
        assert Judgment.objects.filter(pk=judged.pk).exists()

    def test_protect_foreign_keys_refuse_a_hard_delete(self, judged, annotator):
        from django.db import transaction
        from django.db.models import ProtectedError

        with pytest.raises(ProtectedError), transaction.atomic():
            annotator.delete()
        with pytest.raises(ProtectedError), transaction.atomic():
            judged.pair.delete()
        assert Judgment.objects.filter(pk=judged.pk).exists()


class TestMembershipAudit:
    def test_add_role_change_and_remove_are_audited(self, project, site_admin, make_user):
        from feedback_site.projects.services import membership_remove, membership_set

        user = make_user("newbie")
        membership_set(project=project, actor=site_admin, user=user, role="annotator")
        membership_set(project=project, actor=site_admin, user=user, role="annotator")  # no change, no entry
        membership_set(project=project, actor=site_admin, user=user, role="ml_staff")
        membership_remove(project=project, actor=site_admin, user=user)
        entries = list(AuditEntry.objects.filter(project=project, details__user_id=user.pk).order_by("id"))
        assert [e.action for e in entries] == ["member.add", "member.role_change", "member.remove"]
        assert all(e.actor == site_admin and e.created_at for e in entries)
        assert entries[1].details["previous_role"] == "annotator" and entries[1].details["role"] == "ml_staff"

    def test_role_change_through_the_page_is_audited(self, project, site_admin, annotator):
        client = Client()
        client.force_login(site_admin)
        response = client.post(reverse("project-member-role", args=[project.pk, annotator.pk]), {"role": "ml_staff"})
        assert response.status_code in (200, 302)
        entry = AuditEntry.objects.filter(project=project, action="member.role_change").get()
        assert entry.actor == site_admin and entry.details["username"] == annotator.username

    def test_a_refused_change_writes_no_entry(self, project, annotator, make_user):
        from feedback_site.core.errors import ServiceError
        from feedback_site.projects.services import membership_set

        before = AuditEntry.objects.count()
        with pytest.raises(ServiceError):
            membership_set(project=project, actor=annotator, user=make_user("x"), role="admin")
        assert AuditEntry.objects.count() == before
