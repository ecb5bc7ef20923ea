"""Leaderboard: human judgments on pairs from two different versions form the human board,
simulated annotators their own board, and a pair from one version counts nowhere."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from feedback_site.annotation.models import Assignment, Judgment, Pair, PairSource, Prompt, Response
from feedback_site.evaluation.leaderboard import leaderboard
from feedback_site.projects.models import Membership
from feedback_site.registry.models import ModelKind
from feedback_site.registry.services import project_create, version_register
from tests.embedded import embedded_json, has_embedded

pytestmark = pytest.mark.django_db


def _judge(pair, user, preferred):
    assignment = Assignment.objects.create(
        pair=pair, annotator=user, status="submitted", swapped=False, expires_at=timezone.now(), finished_at=timezone.now()
    )
    Judgment.objects.create(assignment=assignment, pair=pair, annotator=user, choice="left", preferred=preferred, swapped=False)


def test_human_simulated_and_same_version_comparisons_are_kept_apart(site_admin, make_user, client):
    project = project_create(creator=site_admin, name="Board")
    v0 = project.current_policy
    v1 = version_register(project=project, kind=ModelKind.POLICY, name="v1", artifact_uri="/x", base_model="b", parent=v0)
    human, bot = make_user("human"), make_user("bot")
    Membership.objects.create(project=project, user=human, role="annotator")
    Membership.objects.create(project=project, user=bot, role="annotator", is_simulated=True)

    def pair(version_a, version_b, n):
        prompt = Prompt.objects.create(project=project, text=f"q{n}")
        a = Response.objects.create(prompt=prompt, text="a", model_version=version_a)
        b = Response.objects.create(prompt=prompt, text="b", model_version=version_b, sample_index=1)
        return Pair.objects.create(project=project, prompt=prompt, response_a=a, response_b=b, overlap=3, source=PairSource.GENERATED)

    # Human: v1 wins 3, loses 1, one tie, one "both bad" (left out).
    for n, preferred in enumerate(["a", "a", "a", "b", "tie", "both_bad"]):
        _judge(pair(v1, v0, n), human, preferred)
    # Simulated: v0 always wins.
    for n in range(4):
        _judge(pair(v0, v1, 10 + n), bot, "a")
    # Same version on both sides: no information about the ranking.
    _judge(pair(v0, v0, 20), human, "a")

    boards = leaderboard(project, n_resamples=50)["boards"]
    assert boards["human"]["n"] == 5 and boards["simulated"]["n"] == 4 and boards["automated"]["n"] == 0
    human_rows = {r["version_id"]: r for r in boards["human"]["rows"]}
    assert human_rows[v1.pk]["rating"] > human_rows[v0.pk]["rating"]
    assert human_rows[v1.pk]["low"] <= human_rows[v1.pk]["rating"] <= human_rows[v1.pk]["high"]
    sim_rows = {r["version_id"]: r for r in boards["simulated"]["rows"]}
    assert sim_rows[v0.pk]["rating"] > sim_rows[v1.pk]["rating"]

    client.force_login(site_admin)
    page = client.get(reverse("project-leaderboard", args=[project.pk]))
    assert page.status_code == 200 and b'id="board-human"' in page.content
    # Each board's chart is drawn in the browser (core/static/core/charts.js) from JSON in the page:
    # the board's rows with their intervals, the current policy marked.
    chart = embedded_json(page.content, "chart-human-data")
    assert chart["kind"] == "interval" and chart["value_label"] == "rating"
    assert [(r["label"], r["value"], r["low"], r["high"]) for r in chart["rows"]] == [
        (f"v{r['number']} {r['name']}", r["rating"], r["low"], r["high"]) for r in leaderboard(project)["boards"]["human"]["rows"]
    ]
    assert {r["label"]: r["highlight"] for r in chart["rows"]} == {f"v{v0.number} {v0.name}": True, f"v{v1.number} v1": False}
    assert embedded_json(page.content, "chart-simulated-data")["rows"][0]["label"] == f"v{v0.number} {v0.name}"
    assert not has_embedded(page.content, "chart-automated-data")  # no comparisons: no chart
    assert b'id="board-automated"' in page.content and b"No comparisons yet." in page.content
    assert b'src="/static/vendor/chart.js/chart.umd.min.js"' in page.content and b'src="/static/core/charts.js"' in page.content
