"""Every model is in the Django admin; immutable records cannot be changed or deleted there."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from feedback_site.annotation.models import Assignment, Judgment, Pair, Prompt, Response
from feedback_site.annotation.services import assignment_next, judgment_submit
from feedback_site.generation.models import GenerationRun
from feedback_site.projects.models import GuidelineVersion, ImportBatch, Membership, Project
from feedback_site.registry.models import ModelVersion
from feedback_site.snapshots.models import Snapshot

pytestmark = pytest.mark.django_db

MODELS = [
    Project,
    Membership,
    GuidelineVersion,
    ImportBatch,
    ModelVersion,
    Prompt,
    Response,
    Pair,
    Assignment,
    Judgment,
    GenerationRun,
    Snapshot,
]
IMMUTABLE = [Judgment, Snapshot, ModelVersion]


@pytest.fixture
def every_kind_of_row(project, site_admin, annotator, make_pairs, generation_run):
    """At least one row of every model, so list_display columns are all exercised."""
    from feedback_site.annotation.imports import import_file
    from feedback_site.projects.services import guideline_publish
    from feedback_site.snapshots.services import snapshot_create

    guideline_publish(project=project, author=site_admin, text="Be helpful.")
    import_file(
        project=project,
        actor=site_admin,
        kind="pairs",
        filename="p.jsonl",
        data=b'{"prompt": "q", "response_a": "a", "response_b": "b", "preferred": "a"}\n',
    )
    make_pairs(project, 2)
    leased = assignment_next(project=project, annotator=annotator)
    judgment_submit(assignment_id=leased.assignment.pk, annotator=annotator, choice="left", rationale="clearer")
    snapshot_create(project=project, actor=site_admin)
    for model in MODELS:
        assert model.objects.exists(), model


def _admin_url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_model_is_registered():
    for model in MODELS:
        assert admin.site.is_registered(model), model


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_changelist_search_and_detail_pages_answer_200(login, superuser, every_kind_of_row, model):
    client = login(superuser)
    assert client.get(_admin_url(model, "changelist")).status_code == 200
    assert client.get(_admin_url(model, "changelist"), {"q": "a"}).status_code == 200
    obj = model.objects.first()
    assert client.get(_admin_url(model, "change", obj.pk)).status_code == 200


@pytest.mark.parametrize("model", IMMUTABLE, ids=lambda m: m.__name__)
def test_immutable_records_cannot_be_added_changed_or_deleted(login, superuser, every_kind_of_row, model):
    client = login(superuser)
    obj = model.objects.first()
    assert client.get(_admin_url(model, "add")).status_code == 403
    assert client.get(_admin_url(model, "delete", obj.pk)).status_code == 403
    page = client.get(_admin_url(model, "change", obj.pk)).content.decode()
    assert 'name="_save"' not in page  # a view page, not a form
    before = model.objects.count()
    response = client.post(_admin_url(model, "changelist"), {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"})
    assert response.status_code in (200, 302)
    assert model.objects.count() == before


def test_project_settings_edited_in_admin_go_through_the_service(login, superuser, project):
    client = login(superuser)
    memberships = list(Membership.objects.filter(project=project))
    data = {
        "name": "Renamed in admin",
        "description": "",
        "overlap": 2,
        "lease_seconds": 600,
        "criteria": '["helpful"]',
        "memberships-TOTAL_FORMS": len(memberships),
        "memberships-INITIAL_FORMS": len(memberships),
        "memberships-MIN_NUM_FORMS": 0,
        "memberships-MAX_NUM_FORMS": 1000,
    }
    for i, membership in enumerate(memberships):
        data[f"memberships-{i}-id"] = membership.pk
        data[f"memberships-{i}-project"] = project.pk
    response = client.post(_admin_url(Project, "change", project.pk), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    project.refresh_from_db()
    assert (project.name, project.overlap, project.criteria) == ("Renamed in admin", 2, ["helpful"])

    data.update(overlap=99)
    response = client.post(_admin_url(Project, "change", project.pk), data)
    assert response.status_code == 200
    assert "overlap" in response.content.decode()
    project.refresh_from_db()
    assert project.overlap == 2


def test_last_admin_membership_cannot_be_deleted_in_admin(login, superuser, project, site_admin):
    client = login(superuser)
    membership = Membership.objects.get(project=project, user=site_admin)
    assert client.get(_admin_url(Membership, "delete", membership.pk)).status_code == 403
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_membership_added_in_admin_goes_through_the_service(login, superuser, project, make_user):
    client = login(superuser)
    bob = make_user("bob")
    response = client.post(_admin_url(Membership, "add"), {"project": project.pk, "user": bob.pk, "role": "ml_staff"})
    assert response.status_code == 302
    assert Membership.objects.get(project=project, user=bob).role == "ml_staff"
