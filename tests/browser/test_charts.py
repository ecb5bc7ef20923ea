"""Every chart of the site in headless Chromium: the training run page, the quality dashboard, the
leaderboard and the model-version timeline each draw their charts with Chart.js (vendored,
through core/static/core/charts.js) from the data the page embeds, with no JavaScript or
console error and no request that fails (the library is served by the site, never a CDN)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def world(site_admin, make_user, make_project, add_member, monkeypatch, tmp_path):
    """A project with a second policy version whose answers people compared with the first one
    (the human leaderboard, the quality dashboard), a reward model (the timeline's second lane),
    and a DPO run in progress with twenty logged steps (the run page)."""
    from types import SimpleNamespace

    from feedback_site.annotation.models import Assignment, Judgment, Pair, PairSource, Prompt, Response
    from feedback_site.registry.models import ModelKind
    from feedback_site.registry.services import version_register
    from feedback_site.snapshots.models import Snapshot
    from feedback_site.training import services as training
    from workers.celery_app import app

    monkeypatch.setattr(app, "send_task", lambda name, *a, **kw: SimpleNamespace(id=f"charts-{name}"))
    project = make_project("Charts")
    v0 = project.current_policy
    v1 = version_register(project=project, kind=ModelKind.POLICY, name="tuned", artifact_uri="/x", base_model="b", parent=v0)
    people = [make_user(f"person{i}") for i in range(2)]
    for person in people:
        add_member(project, person, "annotator")
    for n in range(6):
        prompt = Prompt.objects.create(project=project, text=f"question {n}")
        a = Response.objects.create(prompt=prompt, text="a", model_version=v1)
        b = Response.objects.create(prompt=prompt, text="b", model_version=v0, sample_index=1)
        pair = Pair.objects.create(project=project, prompt=prompt, response_a=a, response_b=b, overlap=2, source=PairSource.GENERATED)
        for person, preferred in zip(people, ("a", "a" if n % 3 else "b")):
            assignment = Assignment.objects.create(
                pair=pair, annotator=person, status="submitted", swapped=False, expires_at=timezone.now(), finished_at=timezone.now()
            )
            Judgment.objects.create(
                assignment=assignment, pair=pair, annotator=person, choice="left", preferred=preferred, swapped=False, time_spent_ms=5000
            )
        Pair.objects.filter(pk=pair.pk).update(judgment_count=2, is_complete=True)
    snapshot = Snapshot.objects.create(
        project=project,
        number=1,
        content_hash="ab" * 32,
        aggregation="majority",
        artifact_dir=str(tmp_path),
        pair_count=6,
        preference_count=6,
        judgment_count=12,
        dropped_count=0,
        files={},
        created_by=site_admin,
    )
    version_register(project=project, kind=ModelKind.REWARD, name="rm", artifact_uri="/rm", base_model="b", parent=v1, snapshot=snapshot)
    run, _ = training.training_launch(project=project, actor=site_admin, method="dpo", snapshot=snapshot, config={"max_steps": 40})
    training.training_claim(run_id=run.pk)
    for step in range(1, 21):
        training.training_report(
            run_id=run.pk, step=step, total=40, eta_seconds=60, metrics={"loss": 1 / step, "learning_rate": 1e-6, "kl": 0.01 * step}
        )
    return {"project": project, "run": run}


@pytest.fixture
def admin_page(page, live_server, site_admin):
    """The browser conftest's page (it fails the test on a JavaScript error), logged in as the site
    admin, also recording console errors and failed requests."""
    client = Client()
    client.force_login(site_admin)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page.problems = []

    def note(problem: str, url: str) -> None:
        if not url.endswith("/favicon.ico"):  # Chromium asks for one; the site has none
            page.problems.append(problem)

    page.on("console", lambda msg: note(f"console {msg.type}: {msg.text}", msg.location.get("url", "")) if msg.type == "error" else None)
    page.on("requestfailed", lambda request: note(f"request failed: {request.url}", request.url))
    page.on("response", lambda response: note(f"{response.status}: {response.url}", response.url) if response.status >= 400 else None)
    return page


def drawn_charts(page) -> list[dict]:
    """What Chart.js drew: for each canvas that is a Chart.js chart, its type, size and datasets."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('canvas')).map(canvas => {
            const chart = Chart.getChart(canvas);
            return chart ? {
                id: canvas.closest('figure') && canvas.closest('figure').id,
                type: chart.config.type,
                width: canvas.width,
                height: canvas.height,
                datasets: chart.data.datasets.map(d => ({label: d.label, n: d.data.length})),
                labels: chart.data.labels || [],
            } : null;
        })"""
    )


def open_page(page, url: str, ready: str | None = None) -> list[dict]:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    if ready:
        page.wait_for_function(ready)
    charts = drawn_charts(page)
    assert charts and all(c is not None and c["width"] > 0 and c["height"] > 0 for c in charts), charts
    assert page.problems == [], page.problems
    return charts


def test_training_run_page_draws_its_live_charts(admin_page, live_server, world):
    page = admin_page
    url = live_server.url + reverse("training-run", args=[world["run"].pk])
    charts = open_page(page, url, ready="() => document.querySelectorAll('figure.chart canvas').length >= 3")
    assert [c["type"] for c in charts] == ["line"] * len(charts)
    assert {"label": "Loss", "n": 20} in charts[0]["datasets"]
    assert page.locator("figure.chart h3 .title").all_text_contents()[:2] == ["Loss", "Learning rate"]
    assert page.text_content("figure.chart .at") == "step 20"
    assert page.get_attribute("figure.chart canvas", "aria-label").startswith("Loss over steps")


def test_quality_dashboard_draws_three_charts(admin_page, live_server, world):
    charts = open_page(admin_page, live_server.url + reverse("project-quality", args=[world["project"].pk]))
    by_id = {c["id"]: c for c in charts}
    assert set(by_id) == {"throughput-chart", "label-chart", "agreement-chart"}
    assert by_id["throughput-chart"]["type"] == "bar" and by_id["label-chart"]["type"] == "bar"
    assert by_id["agreement-chart"]["type"] == "line"
    assert [d["label"] for d in by_id["agreement-chart"]["datasets"]] == ["Raw agreement", "Krippendorff α"]
    assert "Response A" in by_id["label-chart"]["labels"]
    # The numbers stay readable as a table (closed <details> under each chart).
    admin_page.click("#agreement-chart summary")
    assert admin_page.is_visible("#agreement-chart table")


def test_leaderboard_draws_the_human_board(admin_page, live_server, world):
    charts = open_page(admin_page, live_server.url + reverse("project-leaderboard", args=[world["project"].pk]))
    assert [c["id"] for c in charts] == ["chart-human"]
    assert charts[0]["type"] == "bar" and [d["n"] for d in charts[0]["datasets"]] == [2, 2]  # interval bars and rating dots
    assert len(charts[0]["labels"]) == 2 and charts[0]["labels"][0] == "v1 tuned"  # it won 10 of 12


def test_timeline_draws_the_lineage(admin_page, live_server, world):
    charts = open_page(admin_page, live_server.url + reverse("project-versions", args=[world["project"].pk]))
    assert [c["id"] for c in charts] == ["lineage"] and charts[0]["type"] == "scatter"
    labels = {d["label"]: d["n"] for d in charts[0]["datasets"]}
    assert labels == {"": 6, "current policy": 1, "policies": 1, "reward models": 1}  # two edges: 3 points each


def test_a_long_series_is_reduced_per_pixel_and_hover_reads_values(admin_page, live_server, world):
    """12,000 points of loss (three pages of the metrics endpoint): Chart.js's min-max decimation
    draws a few points per pixel column, spikes included, and keeps every point for the readout."""
    from feedback_site.training.models import TrainingMetric

    run = world["run"]
    TrainingMetric.objects.bulk_create(
        TrainingMetric(run=run, step=step, values={"loss": 50.0 if step == 7_777 else 1.0 + (step % 10) / 100})
        for step in range(21, 12_021)
    )
    page = admin_page
    url = live_server.url + reverse("training-run", args=[run.pk])
    open_page(
        page,
        url,
        ready="() => document.querySelector('figure.chart .at') && document.querySelector('figure.chart .at').textContent === 'step 12020'",
    )
    drawn = page.evaluate(
        """() => {
            const chart = Chart.getChart(document.querySelector('figure.chart canvas'));
            const data = chart.data.datasets[0].data;
            return {drawn: data.length, top: Math.max(...data.map(p => p.y)), width: chart.width};
        }"""
    )
    # (What a dataset holds after decimation is what is drawn; the readout above saw step 12,020.)
    assert drawn["drawn"] <= 4 * drawn["width"] < 12_020 and drawn["top"] == 50.0, drawn
    # Hovering reads the nearest step's values into the legend; leaving shows the latest again.
    box = page.locator("figure.chart canvas").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.wait_for_function("() => document.querySelector('figure.chart .at').textContent !== 'step 12020'")
    assert page.text_content("figure.chart .at").startswith("step ")
    page.mouse.move(0, 0)
    page.wait_for_function("() => document.querySelector('figure.chart .at').textContent === 'step 12020'")
