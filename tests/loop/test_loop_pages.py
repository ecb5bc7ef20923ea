"""The loop page and API through HTTP: forms and JSON bodies reach the services, bad input is a
400 that names the problem, and the page lists what was made."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feedback_site.loop.models import SimulatedAnnotator

pytestmark = pytest.mark.django_db


def test_loop_page_creates_a_simulated_annotator_and_explains_bad_input(project, staff, policies, client):
    client.force_login(staff)
    response = client.post(
        f"/projects/{project.pk}/loop/", {"action": "simulated", "name": "Asker", "rule": "asks_question", "noise": "0.1", "seed": "3"}
    )
    assert response.status_code == 302
    sim = SimulatedAnnotator.objects.get(project=project, name="Asker")
    assert (sim.rule, sim.noise, sim.seed) == ("asks_question", 0.1, 3) and sim.user.memberships.get().is_simulated
    page = client.get(f"/projects/{project.pk}/loop/").content.decode()
    assert "Asker" in page and "Start a round" in page and "Launch campaign" in page
    bad = client.post(f"/projects/{project.pk}/loop/", {"action": "simulated", "name": "Loud", "rule": "asks_question", "noise": "0.9"})
    assert bad.status_code == 400 and "noise" in bad.content.decode()
    bad_round = client.post(f"/projects/{project.pk}/loop/", {"action": "round", "config": "{not json"})
    assert bad_round.status_code == 400 and "not valid JSON" in bad_round.content.decode()


def test_api_round_settings_errors_name_the_field(project, staff, policies):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=staff)[0].key}")
    response = api.post(f"/api/v1/projects/{project.pk}/rounds/", {"config": {"method": "dpo", "k": 99}}, format="json")
    assert response.status_code == 400 and "k: must be between 2 and 16" in response.json()["detail"]
    created = api.post(
        f"/api/v1/projects/{project.pk}/simulated-annotators/", {"name": "Kw", "rule": "keyword", "keyword": "please"}, format="json"
    )
    assert created.status_code == 201 and created.json()["rule"] == "keyword"
    assert api.get(f"/api/v1/projects/{project.pk}/simulated-annotators/").json()[0]["name"] == "Kw"
