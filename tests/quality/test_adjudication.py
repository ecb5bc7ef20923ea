"""Adjudication: staff see disagreeing pairs with rationales (pseudonymous), set and change the
final label; every decision is audited."""

from __future__ import annotations

import pytest

from feedback_site.core.errors import Forbidden, Invalid
from feedback_site.core.models import AuditEntry
from feedback_site.quality.models import Adjudication
from feedback_site.quality.services import adjudicate

pytestmark = pytest.mark.django_db


@pytest.fixture
def disputed(project, team, make_pairs, judge):
    agreed, split, tie_vs_a, sim_only = make_pairs(project, 4, overlap=3)
    judge(
        [
            dict(pair=agreed, user=team["alice"], preferred="a"),
            dict(pair=agreed, user=team["bob"], preferred="a"),
            dict(pair=split, user=team["alice"], preferred="a", rationale="A answers the question"),
            dict(pair=split, user=team["bob"], preferred="b", rationale="B is safer"),
            dict(pair=tie_vs_a, user=team["alice"], preferred="tie"),
            dict(pair=tie_vs_a, user=team["carol"], preferred="a"),
            # disagreement only with a simulated annotator: not a human disagreement
            dict(pair=sim_only, user=team["alice"], preferred="a"),
            dict(pair=sim_only, user=team["robot"], preferred="b"),
        ]
    )
    return {"agreed": agreed, "split": split, "tie_vs_a": tie_vs_a, "sim_only": sim_only}


def test_disagreements_list_rationales_with_pseudonyms(client, project, disputed, ml_staff):
    client.force_login(ml_staff)
    body = client.get(f"/api/v1/projects/{project.pk}/quality/disagreements/").json()
    assert body["count"] == 2
    by_pair = {item["pair_id"]: item for item in body["results"]}
    assert set(by_pair) == {disputed["split"].pk, disputed["tie_vs_a"].pk}
    split = by_pair[disputed["split"].pk]
    assert [j["rationale"] for j in split["judgments"]] == ["A answers the question", "B is safer"]
    assert all(j["annotator"].startswith("ann-") for j in split["judgments"])
    assert "alice" not in str(body) and "bob" not in str(body)
    page = client.get(f"/projects/{project.pk}/quality/adjudication/").content.decode()
    assert "B is safer" in page and f'id="pair-{disputed["split"].pk}"' in page and "alice" not in page


def test_adjudicate_then_change_keeps_history_in_the_audit_log(client, project, disputed, ml_staff):
    pair = disputed["split"]
    client.force_login(ml_staff)
    url = f"/api/v1/pairs/{pair.pk}/adjudication/"
    assert client.get(url).status_code == 404
    first = client.put(url, {"label": "a", "note": "A follows the guideline"}, content_type="application/json")
    assert first.status_code == 201 and first.json()["label"] == "a"
    second = client.put(url, {"label": "tie"}, content_type="application/json")
    assert second.status_code == 200 and second.json()["label"] == "tie"
    assert Adjudication.objects.get(pair=pair).label == "tie"
    entries = list(AuditEntry.objects.filter(action="judgment.adjudicate").order_by("id"))
    assert [e.details["label"] for e in entries] == ["a", "tie"]
    assert entries[0].details["previous"] is None and entries[1].details["previous"]["label"] == "a"
    assert all(e.actor_id == ml_staff.pk and e.project_id == project.pk for e in entries)
    # adjudicated pairs leave the open list and appear under "adjudicated"
    open_ids = {i["pair_id"] for i in client.get(f"/api/v1/projects/{project.pk}/quality/disagreements/").json()["results"]}
    done = client.get(f"/api/v1/projects/{project.pk}/quality/disagreements/?status=adjudicated").json()["results"]
    assert pair.pk not in open_ids and [d["adjudication"]["label"] for d in done] == ["tie"]


def test_adjudication_from_the_page(client, project, disputed, site_admin):
    pair = disputed["tie_vs_a"]
    client.force_login(site_admin)
    response = client.post(f"/projects/{project.pk}/quality/adjudication/{pair.pk}/", {"label": "b", "note": "both miss; B less"})
    assert response.status_code == 302
    assert Adjudication.objects.get(pair=pair).label == "b"


def test_bad_labels_and_roles_are_refused(client, project, disputed, annotator, make_user):
    pair = disputed["split"]
    with pytest.raises(Invalid, match="label must be one of"):
        adjudicate(pair_id=pair.pk, actor=project.created_by, label="left")
    with pytest.raises(Forbidden):
        adjudicate(pair_id=pair.pk, actor=annotator, label="a")
    client.force_login(annotator)
    assert client.put(f"/api/v1/pairs/{pair.pk}/adjudication/", {"label": "a"}, content_type="application/json").status_code == 403
    assert client.get(f"/api/v1/projects/{project.pk}/quality/disagreements/").status_code == 403
    client.force_login(make_user("stranger"))
    assert client.put(f"/api/v1/pairs/{pair.pk}/adjudication/", {"label": "a"}, content_type="application/json").status_code == 404
    client.force_login(project.created_by)
    bad = client.put(f"/api/v1/pairs/{pair.pk}/adjudication/", {"label": "left"}, content_type="application/json")
    assert bad.status_code == 400
    assert client.put("/api/v1/pairs/999999/adjudication/", {"label": "a"}, content_type="application/json").status_code == 404
    assert not Adjudication.objects.exists()


def test_the_page_renders_answers_as_markdown_like_the_annotate_page(client, project, disputed, ml_staff):
    split = disputed["split"]
    split.response_a.text = "Use **bold** and `code`. <script>window.__x = 1</script>"
    split.response_a.save(update_fields=["text"])
    client.force_login(ml_staff)
    page = client.get(f"/projects/{project.pk}/quality/adjudication/").content.decode()
    assert "<strong>bold</strong>" in page and "<code>code</code>" in page
    assert "<script>window.__x" not in page and "&lt;script&gt;" in page  # raw HTML stays text
