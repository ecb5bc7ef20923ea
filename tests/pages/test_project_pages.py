"""New project, settings, guidelines and members, through the pages."""

from __future__ import annotations

import pytest
from django.urls import reverse

from feedback_site.projects.models import GuidelineVersion, Membership, Project, Role
from feedback_site.registry.models import ModelKind, ModelVersion

pytestmark = pytest.mark.django_db


class TestCreate:
    def test_form_creates_project_admin_membership_and_version_0(self, login, site_admin):
        client = login(site_admin)
        response = client.post(
            reverse("project-create"),
            {
                "name": "Helpful assistant",
                "description": "Round one",
                "overlap": 3,
                "lease_seconds": 300,
                "criteria": "helpful, harmless , honest,",
                "guidelines": "Prefer the answer that is correct.",
            },
        )
        project = Project.objects.get(name="Helpful assistant")
        assert response.status_code == 302
        assert response["Location"] == reverse("project-detail", args=[project.pk])
        assert (project.overlap, project.lease_seconds, project.description) == (3, 300, "Round one")
        assert project.criteria == ["helpful", "harmless", "honest"]
        assert Membership.objects.get(project=project, user=site_admin).role == Role.ADMIN
        v0 = ModelVersion.objects.get(project=project, kind=ModelKind.POLICY)
        assert v0.number == 0 and project.current_policy_id == v0.pk
        assert GuidelineVersion.objects.get(project=project).number == 1

        html = client.get(response["Location"]).content.decode()
        assert "Helpful assistant" in html and "policy version 0 is registered" in html

    @pytest.mark.parametrize(
        "data, field_error",
        [
            ({"name": "P", "overlap": 0, "lease_seconds": 600}, "overlap must be an integer from 1 to 20"),
            ({"name": "P", "overlap": 1, "lease_seconds": 5}, "lease_seconds must be an integer from 30 to 86400"),
            ({"name": "P", "overlap": 1, "lease_seconds": 600, "criteria": "a, a"}, "at most 10 distinct names"),
            ({"name": "P", "overlap": "two", "lease_seconds": 600}, "Enter a whole number"),
            ({"name": "", "overlap": 1, "lease_seconds": 600}, "This field is required"),
        ],
    )
    def test_bad_values_rerender_with_400_and_create_nothing(self, login, site_admin, data, field_error):
        before = Project.objects.count()
        response = login(site_admin).post(reverse("project-create"), data)
        assert response.status_code == 400
        assert field_error in response.content.decode()
        assert "The project was not created." in response.content.decode()
        assert Project.objects.count() == before


class TestSettingsAndGuidelines:
    def test_admin_changes_settings(self, login, site_admin, project):
        response = login(site_admin).post(
            reverse("project-settings", args=[project.pk]),
            {
                "settings-name": "Renamed",
                "settings-description": "",
                "settings-overlap": 2,
                "settings-lease_seconds": 900,
                "settings-criteria": "helpful",
            },
        )
        assert response.status_code == 302
        project.refresh_from_db()
        assert (project.name, project.overlap, project.lease_seconds, project.criteria) == ("Renamed", 2, 900, ["helpful"])

    def test_get_sends_admins_to_the_settings_form_and_refuses_others(self, login, site_admin, project, annotator):
        url = reverse("project-settings", args=[project.pk])
        response = login(site_admin).get(url)
        assert response.status_code == 302 and response["Location"] == reverse("project-detail", args=[project.pk]) + "#settings"
        page = login(site_admin).get(response["Location"])
        assert page.status_code == 200 and 'id="settings"' in page.content.decode()
        assert login(annotator).get(url).status_code in (403, 404)

    def test_bad_setting_shows_service_message_and_changes_nothing(self, login, site_admin, project):
        response = login(site_admin).post(
            reverse("project-settings", args=[project.pk]),
            {"settings-name": "Renamed", "settings-overlap": 50, "settings-lease_seconds": 600},
        )
        assert response.status_code == 400
        assert "overlap must be an integer from 1 to 20" in response.content.decode()
        project.refresh_from_db()
        assert (project.name, project.overlap) == ("Demo", 1)

    def test_publish_guidelines_numbers_versions(self, login, site_admin, project):
        client = login(site_admin)
        url = reverse("project-guideline-publish", args=[project.pk])
        assert client.post(url, {"guideline-text": "First"}).status_code == 302
        assert client.post(url, {"guideline-text": "Second <b>bold</b>"}).status_code == 302
        assert list(GuidelineVersion.objects.filter(project=project).values_list("number", flat=True)) == [2, 1]
        html = client.get(reverse("project-detail", args=[project.pk])).content.decode()
        assert "version 2" in html and "Second &lt;b&gt;bold&lt;/b&gt;" in html  # raw HTML stays text
        # Markdown renders as on the annotate page.
        client.post(url, {"guideline-text": "Prefer **correct** answers.\n\n- one\n- two"})
        html = client.get(reverse("project-detail", args=[project.pk])).content.decode()
        assert "Prefer <strong>correct</strong> answers." in html and "<li>one</li>" in html

    def test_empty_guidelines_rejected(self, login, site_admin, project):
        response = login(site_admin).post(reverse("project-guideline-publish", args=[project.pk]), {"guideline-text": "   "})
        assert response.status_code == 400
        assert not GuidelineVersion.objects.filter(project=project).exists()


class TestMembers:
    def test_add_change_and_remove(self, login, site_admin, project, make_user):
        client = login(site_admin)
        bob = make_user("bob")
        assert client.post(reverse("project-member-add", args=[project.pk]), {"username": "bob", "role": "annotator"}).status_code == 302
        assert Membership.objects.get(project=project, user=bob).role == Role.ANNOTATOR

        page = client.get(reverse("project-members", args=[project.pk])).content.decode()
        assert "bob" in page and reverse("project-member-remove", args=[project.pk, bob.pk]) in page

        assert client.post(reverse("project-member-role", args=[project.pk, bob.pk]), {"role": "ml_staff"}).status_code == 302
        assert Membership.objects.get(project=project, user=bob).role == Role.ML_STAFF

        assert client.post(reverse("project-member-remove", args=[project.pk, bob.pk])).status_code == 302
        assert not Membership.objects.filter(project=project, user=bob).exists()

    def test_unknown_username(self, login, site_admin, project):
        response = login(site_admin).post(reverse("project-member-add", args=[project.pk]), {"username": "ghost", "role": "annotator"})
        assert response.status_code == 400
        assert "There is no active user named “ghost”" in response.content.decode()

    def test_last_admin_cannot_be_removed(self, login, site_admin, project):
        response = login(site_admin).post(reverse("project-member-remove", args=[project.pk, site_admin.pk]))
        assert response.status_code == 400
        assert "A project keeps at least one admin." in response.content.decode()
        assert Membership.objects.filter(project=project, user=site_admin, role=Role.ADMIN).exists()

    def test_removing_a_non_member_is_404(self, login, site_admin, project, outsider):
        response = login(site_admin).post(reverse("project-member-remove", args=[project.pk, outsider.pk]))
        assert response.status_code == 404

    def test_ml_staff_sees_list_without_controls(self, login, ml_staff, project):
        html = login(ml_staff).get(reverse("project-members", args=[project.pk])).content.decode()
        assert "mlstaff" in html and "siteadmin" in html
        assert "Add member" not in html and "Remove" not in html


def test_user_text_is_escaped(login, make_project, site_admin):
    project = make_project(name="<script>alert('x')</script>", description='<img src=x onerror="alert(1)">', criteria=["<b>c</b>"])
    html = login(site_admin).get(reverse("project-detail", args=[project.pk])).content.decode()
    assert "<script>alert(" not in html and "<img src=x" not in html and "<b>c</b>" not in html
    assert "&lt;script&gt;alert(" in html and "&lt;img src=x onerror=" in html
