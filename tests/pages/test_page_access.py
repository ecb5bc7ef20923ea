"""Who may open which page: anonymous users are sent to log in, non-members get 404 (project ids
cannot be probed), annotators get 403 on staff pages, staff and admins get 200."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

STAFF_PAGES = ["project-members", "project-imports", "project-generate", "project-snapshots"]


def _url(name, project, run=None):
    if name == "generation-run":
        return reverse(name, args=[run.pk])
    return reverse(name, args=[project.pk])


ALL_PAGES = ["project-detail", *STAFF_PAGES, "generation-run"]


@pytest.mark.parametrize("name", ALL_PAGES)
def test_anonymous_is_sent_to_login(client, project, generation_run, name):
    url = _url(name, project, generation_run)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert "next=" in response["Location"]


@pytest.mark.parametrize("name", ALL_PAGES)
def test_non_member_gets_404(login, outsider, project, generation_run, name):
    response = login(outsider).get(_url(name, project, generation_run))
    assert response.status_code == 404
    assert b"Not found" in response.content


@pytest.mark.parametrize("name", [*STAFF_PAGES, "generation-run"])
def test_annotator_gets_403_on_staff_pages(login, annotator, project, generation_run, name):
    response = login(annotator).get(_url(name, project, generation_run))
    assert response.status_code == 403
    assert b"does not allow this" in response.content


@pytest.mark.parametrize("name", ALL_PAGES)
@pytest.mark.parametrize("who", ["site_admin", "ml_staff", "superuser"])
def test_staff_get_200(request, login, project, generation_run, name, who):
    user = request.getfixturevalue(who)
    response = login(user).get(_url(name, project, generation_run))
    assert response.status_code == 200


def test_unknown_project_and_run_are_404(login, site_admin):
    client = login(site_admin)
    assert client.get(reverse("project-detail", args=[999999])).status_code == 404
    assert client.get(reverse("generation-run", args=[999999])).status_code == 404


def test_annotator_overview_shows_only_their_own_work(login, annotator, project):
    response = login(annotator).get(reverse("project-detail", args=[project.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Start annotating" in html
    assert reverse("annotate", args=[project.pk]) in html
    assert "pairs you judged" in html
    for staff_only in (
        "Annotation progress",
        "Model versions",
        "Latest generation runs",
        "Save settings",
        reverse("project-imports", args=[project.pk]),
    ):
        assert staff_only not in html


def test_ml_staff_sees_progress_but_not_settings(login, ml_staff, project):
    html = login(ml_staff).get(reverse("project-detail", args=[project.pk])).content.decode()
    assert "Annotation progress" in html and "Model versions" in html
    assert "SmolLM2-135M-Instruct" in html  # version 0, the current policy
    assert "Save settings" not in html


def test_admin_sees_settings(login, site_admin, project):
    html = login(site_admin).get(reverse("project-detail", args=[project.pk])).content.decode()
    assert "Save settings" in html and "Publish new version" in html


class TestProjectCreateAccess:
    def test_anonymous_redirected(self, client):
        response = client.get(reverse("project-create"))
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))

    def test_non_staff_forbidden(self, login, make_user):
        from feedback_site.projects.models import Project

        client = login(make_user("plain"))
        assert client.get(reverse("project-create")).status_code == 403
        response = client.post(reverse("project-create"), {"name": "X", "overlap": 1, "lease_seconds": 600})
        assert response.status_code == 403
        assert not Project.objects.filter(name="X").exists()

    def test_site_staff_allowed(self, login, site_admin):
        assert login(site_admin).get(reverse("project-create")).status_code == 200


@pytest.mark.parametrize(
    "name, data",
    [
        ("project-settings", {"settings-name": "Renamed", "settings-overlap": 1, "settings-lease_seconds": 600}),
        ("project-member-add", {"username": "ann1", "role": "admin"}),
    ],
)
def test_admin_only_posts_refuse_ml_staff(login, ml_staff, annotator, project, name, data):
    response = login(ml_staff).post(reverse(name, args=[project.pk]), data)
    assert response.status_code == 403
    project.refresh_from_db()
    assert project.name == "Demo"


def test_annotator_cannot_publish_guidelines(login, annotator, project):
    from feedback_site.projects.models import GuidelineVersion

    response = login(annotator).post(reverse("project-guideline-publish", args=[project.pk]), {"guideline-text": "Be nice"})
    assert response.status_code == 403
    assert not GuidelineVersion.objects.filter(project=project).exists()


def test_annotator_cannot_cancel_runs(login, annotator, generation_run):
    response = login(annotator).post(reverse("generation-run-cancel", args=[generation_run.pk]))
    assert response.status_code == 403
    generation_run.refresh_from_db()
    assert generation_run.status == "queued"
