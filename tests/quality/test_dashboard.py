"""Dashboard figures on a constructed project, checked by hand; bounded query counts; access."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from feedback_site.quality import selectors, stats
from tests.embedded import embedded_json, has_embedded

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenario(project, team, make_pairs, judge):
    from feedback_site.annotation.models import Pair
    from feedback_site.projects.models import Membership

    project.min_seconds_per_judgment = 2.5
    project.save(update_fields=["min_seconds_per_judgment"])
    p = make_pairs(project, 6, overlap=3)
    alice, bob, carol, robot = team["alice"], team["bob"], team["carol"], team["robot"]
    Pair.objects.filter(pk=p[3].pk).update(is_gold=True, gold_label="a")
    rows = [
        # alice: every a/b choice is on the left (swapped so), times 1..6 s
        dict(pair=p[0], user=alice, preferred="a", swapped=False, time_ms=1000),
        dict(pair=p[1], user=alice, preferred="b", swapped=True, time_ms=2000, rationale="B cites sources"),
        dict(pair=p[2], user=alice, preferred="tie", time_ms=3000),
        dict(pair=p[3], user=alice, preferred="a", swapped=False, time_ms=4000),
        dict(pair=p[4], user=alice, preferred="both_bad", time_ms=5000),
        dict(pair=p[5], user=alice, preferred="b", swapped=True, time_ms=6000),
        dict(pair=p[0], user=bob, preferred="a", swapped=True),
        dict(pair=p[1], user=bob, preferred="b"),
        dict(pair=p[2], user=bob, preferred="a"),
        dict(pair=p[4], user=bob, preferred="both_bad"),
        dict(pair=p[0], user=carol, preferred="a"),
        dict(pair=p[1], user=carol, preferred="a", rationale="A is shorter"),
        # the simulated annotator is left out of every human figure
        dict(pair=p[4], user=robot, preferred="a"),
        dict(pair=p[5], user=robot, preferred="a"),
    ]
    judge(rows)
    Membership.objects.filter(project=project, user=bob).update(paused_at=timezone.now(), pause_reason="gold accuracy 0.40 < 0.70")
    return {"pairs": p, **team}


def test_dashboard_figures_match_hand_computation(project, scenario):
    data = selectors.dashboard(project)
    # Human units with >= 2 labels: p0 [a,a,a], p1 [b,b,a], p2 [tie,a], p4 [both_bad,both_bad].
    units = [["a", "a", "a"], ["b", "b", "a"], ["tie", "a"], ["both_bad", "both_bad"]]
    assert data["agreement"]["overlapping_pairs"] == 4
    assert data["agreement"]["pairwise_agreement"] == pytest.approx(10 / 16)
    assert data["agreement"]["krippendorff_alpha"] == pytest.approx(stats.krippendorff_alpha(units))
    assert len(data["agreement"]["over_time"]) == 1 and data["agreement"]["over_time"][0]["pairs"] == 4

    rows = {r["username"]: r for r in data["annotators"]}
    assert set(rows) == {"alice", "bob", "carol"}  # robot (simulated) is not listed
    alice, bob, carol = rows["alice"], rows["bob"], rows["carol"]
    assert (alice["agreement_agree"], alice["agreement_compared"]) == (4, 6)
    assert (bob["agreement_agree"], bob["agreement_compared"]) == (4, 6)
    assert (carol["agreement_agree"], carol["agreement_compared"]) == (2, 4)
    assert alice["count"] == 6 and bob["count"] == 4 and carol["count"] == 2
    assert (alice["left"], alice["right"]) == (4, 0)
    assert alice["left_p_value"] == pytest.approx(2 / 16) and not alice["position_biased"]
    assert alice["median_seconds"] == pytest.approx(3.5)
    assert alice["too_fast"] == 2  # 1 s and 2 s are under 2.5 s
    assert (alice["gold_correct"], alice["gold_judged"]) == (1, 1)
    assert bob["paused"] and "gold accuracy" in bob["pause_reason"] and not alice["paused"]

    assert data["labels"]["preferred"] == {"a": 6, "b": 3, "tie": 1, "both_bad": 2}
    # project level: alice 4 left; bob p0 a swapped -> right, p1 b -> right, p2 a -> left; carol 2 left
    assert (data["position_bias"]["left"], data["position_bias"]["right"]) == (7, 2)
    assert data["progress"]["judgments"] == 14 and sum(b["judgments"] for b in data["progress"]["per_hour"]) == 12


def test_position_bias_significance_level_is_a_parameter(client, project, scenario, site_admin):
    client.force_login(site_admin)
    flagged = client.get(f"/api/v1/projects/{project.pk}/quality/?alpha=0.2").json()
    assert {r["username"]: r["position_biased"] for r in flagged["annotators"]}["alice"] is True
    assert client.get(f"/api/v1/projects/{project.pk}/quality/?alpha=2").status_code == 400
    assert client.get(f"/api/v1/projects/{project.pk}/quality/?bucket=year").json()["error"] == "bad_bucket"


def _build(project, users, make_pairs, judge, n_pairs):
    pairs = make_pairs(project, n_pairs, overlap=3)
    labels = ["a", "b", "tie", "both_bad"]
    judge(
        [
            dict(pair=pair, user=user, preferred=labels[(i + k) % 3 if k else i % 4], swapped=bool((i + k) % 2), time_ms=500 * (i % 9))
            for i, pair in enumerate(pairs)
            for k, user in enumerate(users)
        ]
    )


def _queries(project) -> int:
    with CaptureQueriesContext(connection) as ctx:
        selectors.dashboard(project)
    return len(ctx.captured_queries)


def test_dashboard_query_count_does_not_grow_with_the_project(project, team, make_pairs, judge, django_assert_max_num_queries):
    users = [team["alice"], team["bob"], team["carol"]]
    _build(project, users, make_pairs, judge, 10)
    small = _queries(project)
    _build(project, users, make_pairs, judge, 150)
    large = _queries(project)
    assert small == large
    with django_assert_max_num_queries(12):
        selectors.dashboard(project)


def test_dashboard_page_and_api_are_staff_only(client, project, scenario, annotator, ml_staff, make_user):
    client.force_login(annotator)
    assert client.get(f"/api/v1/projects/{project.pk}/quality/").status_code == 403
    assert client.get(f"/projects/{project.pk}/quality/").status_code == 403
    assert client.get(f"/projects/{project.pk}/quality/adjudication/").status_code == 403
    client.force_login(make_user("outsider"))
    assert client.get(f"/api/v1/projects/{project.pk}/quality/").status_code == 404
    assert client.get(f"/projects/{project.pk}/quality/").status_code == 404
    client.force_login(ml_staff)
    page = client.get(f"/projects/{project.pk}/quality/?sort=agreement&dir=asc")
    html = page.content.decode()
    assert page.status_code == 200 and 'id="annotator-table"' in html
    # ascending agreement: carol (0.5) before alice and bob (0.667)
    assert html.index('data-annotator="carol"') < html.index('data-annotator="alice"')
    assert "robot" not in html
    api = client.get(f"/api/v1/projects/{project.pk}/quality/")
    assert api.status_code == 200 and {r["username"] for r in api.json()["annotators"]} == {
        "alice",
        "bob",
        "carol",
        "ann1",
    }  # ann1: a member with no judgments yet


def test_dashboard_embeds_the_chart_data_and_tables_of_it(client, project, scenario, ml_staff):
    """The three charts are drawn in the browser (core/static/core/charts.js) from JSON in the
    page; the same numbers are in a table under each chart for readers without JavaScript."""
    from feedback_site.annotation.models import Preference

    client.force_login(ml_staff)
    html = client.get(f"/projects/{project.pk}/quality/").content.decode()
    data = selectors.dashboard(project)

    throughput = embedded_json(html, "throughput-chart-data")
    assert throughput["kind"] == "bar" and throughput["integer"] and [s["label"] for s in throughput["series"]] == ["Judgments"]
    assert sum(throughput["series"][0]["values"]) == 12  # the human judgments; the robot's two are left out
    assert throughput["labels"] == [b["hour"].strftime("%m-%d %H:00") for b in data["progress"]["per_hour"]]

    labels = embedded_json(html, "label-chart-data")
    assert dict(zip(labels["labels"], labels["series"][0]["values"])) == {
        dict(Preference.choices)[k]: v for k, v in data["labels"]["preferred"].items()
    }

    agreement = embedded_json(html, "agreement-chart-data")
    assert agreement["kind"] == "line" and agreement["y_max"] == 1.0
    assert [s["label"] for s in agreement["series"]] == ["Raw agreement", "Krippendorff α"]
    raw, alpha = (s["values"] for s in agreement["series"])
    assert raw == [pytest.approx(10 / 16)] and alpha == [pytest.approx(data["agreement"]["krippendorff_alpha"])]
    assert agreement["labels"] == [str(b["start"]) for b in data["agreement"]["over_time"]]

    # Figures the script finds, aria-labels, and the numbers as tables without JavaScript.
    for name in ("throughput-chart", "label-chart", "agreement-chart"):
        assert f'<figure class="chart" id="{name}" data-chart="{name}-data">' in html
    assert html.count('<canvas role="img" aria-label="') == 3 and html.count('<details class="chart-data">') == 3
    assert '<th scope="col">Raw agreement</th>' in html and '<td class="num">0.625</td>' in html
    assert 'src="/static/vendor/chart.js/chart.umd.min.js"' in html and 'src="/static/core/charts.js"' in html


def test_dashboard_without_judgments_says_so_instead_of_charting(client, project, ml_staff):
    client.force_login(ml_staff)
    html = client.get(f"/projects/{project.pk}/quality/").content.decode()
    assert "No overlapping judgments yet" in html and not has_embedded(html, "agreement-chart-data")
    assert "No data yet" in html and not has_embedded(html, "throughput-chart-data")
    assert has_embedded(html, "label-chart-data")  # every label, at zero


def test_my_statistics_show_only_my_own_figures(client, project, scenario):
    client.force_login(scenario["carol"])
    mine = client.get(f"/api/v1/projects/{project.pk}/quality/me/").json()
    assert mine["count"] == 2 and (mine["agreement_agree"], mine["agreement_compared"]) == (2, 4)
    assert "username" not in mine and "annotators" not in mine
    page = client.get(f"/projects/{project.pk}/quality/me/").content.decode()
    assert 'id="my-count">2<' in page
    for other in ("alice", "bob", "robot"):
        assert other not in page and other not in str(mine)
    # another annotator's statistics are not reachable
    assert client.get(f"/api/v1/projects/{project.pk}/quality/").status_code == 403


def test_score_button_explains_why_nothing_was_queued(client, project, ml_staff):
    from feedback_site.registry.models import ModelVersion

    client.force_login(ml_staff)
    page = client.get(f"/projects/{project.pk}/quality/").content.decode()
    assert "Off for this project" in page
    policy = ModelVersion.objects.filter(project=project).first()
    response = client.post(f"/projects/{project.pk}/quality/score-pairs/", {"reward_model": policy.pk}, follow=True)
    assert response.status_code == 200 and "uncertainty first" in response.content.decode()
