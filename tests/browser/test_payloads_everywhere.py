"""Every page an admin and an annotator can open, full of script payloads, runs none of them.

Project names and descriptions, guidelines, criteria, prompts, system prompts, responses,
rationales, import file names, snapshot notes, run messages and logs and model-version names are
all filled from a payload list (script tags, img onerror, svg onload, javascript: URLs, attribute
breakouts, closing tags). Each payload, if it ran, would set `window.__pwned` or open a dialog.
The test walks the permission table's page routes (tests/security/permission_table.py) as the
project admin and as an annotator, plus the Django admin as a superuser, in headless Chromium.
"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from tests.security.permission_table import OK, TABLE, probe_method, split_key

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "pw-for-tests-123"

PAYLOADS = [
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=2">',
    "<svg onload=window.__pwned=3>",
    "[click me](javascript:window.__pwned=4)",
    '<a href="javascript:window.__pwned=5">link</a>',
    '"><img src=x onerror=window.__pwned=6>',
    "'><svg/onload=window.__pwned=7>",
    "</textarea><script>window.__pwned=8</script>",
    "</script><script>window.__pwned=9</script>",
    '<iframe srcdoc="<script>parent.__pwned=10</script>"></iframe>',
    "<body onload=alert(11)>",
    '<details open ontoggle="window.__pwned=12">',
    "{{ 7|add:7 }}{% now 'Y' %}",
    "javascript:alert(13)",
]
ALL = "\n\n".join(PAYLOADS)


def hostile(i: int) -> str:
    return PAYLOADS[i % len(PAYLOADS)]


@pytest.fixture
def hostile_world(make_user, add_member, site_admin, settings):
    from feedback_site.annotation import services as annotation_services
    from feedback_site.annotation.imports import import_file
    from feedback_site.annotation.models import Pair
    from feedback_site.generation.services import generation_fail, generation_launch, generation_log
    from feedback_site.projects.services import guideline_publish
    from feedback_site.registry.services import project_create
    from feedback_site.snapshots.services import snapshot_create
    from feedback_site.training.services import training_fail, training_launch, training_log

    project = project_create(
        creator=site_admin,
        name=f"Proj {PAYLOADS[1]}",
        overlap=2,
        description=ALL,
        criteria=['<img src=x onerror="window.__pwned=20">', "<svg onload=alert(21)>"],
    )
    guideline_publish(project=project, author=site_admin, text=ALL)
    other = project_create(creator=site_admin, name=PAYLOADS[0])
    users = {name: make_user(name, password=PASSWORD) for name in ("xadmin", "xann", "xann2")}
    root = make_user("xroot", superuser=True, password=PASSWORD)
    add_member(project, users["xadmin"], "admin")
    add_member(project, users["xann"], "annotator")
    add_member(project, users["xann2"], "annotator")
    add_member(other, users["xann"], "annotator")

    lines = [
        {
            "prompt": f"{hostile(i)} prompt {i}",
            "system": hostile(i + 3),
            "response_a": f"{hostile(i + 1)}\n\n{ALL}",
            "response_b": f"{hostile(i + 2)} b{i}",
        }
        for i in range(4)
    ]
    lines += [
        {"prompt": f"{hostile(i)} labelled {i}", "response_a": hostile(i + 5), "response_b": "plain", "preferred": "a"} for i in range(3)
    ]
    import_file(
        project=project,
        actor=site_admin,
        kind="pairs",
        filename=f"{PAYLOADS[5]}.jsonl",
        data="\n".join(json.dumps(x) for x in lines).encode(),
    )

    # Judgments with hostile rationales, from both annotators.
    for user in (users["xann2"], users["xann"]):
        leased = annotation_services.assignment_next(project=project, annotator=user)
        annotation_services.judgment_submit(
            assignment_id=leased.assignment.pk, annotator=user, choice="left", strength="clear", rationale=ALL
        )
    snapshot, _ = snapshot_create(project=project, actor=site_admin, note=PAYLOADS[6])
    # Runs with hostile messages and logs (what a failing worker could write).
    generation = generation_launch(project=project, actor=site_admin, prompt_selection="all", k=2)
    generation_log(run_id=generation.pk, line=ALL)
    generation_fail(run_id=generation.pk, message=ALL)
    training, _ = training_launch(project=project, actor=site_admin, method="reward", snapshot=snapshot, config={"max_steps": 2})
    training_log(run_id=training.pk, line=ALL)
    training_fail(run_id=training.pk, message=ALL)
    generation.refresh_from_db()
    training.refresh_from_db()
    assignment = annotation_services.assignment_next(project=project, annotator=users["xann"]).assignment
    return {
        "project": project,
        "project_b": other,
        "snapshot": snapshot,
        "generation_run": generation,
        "training_run": training,
        "assignment": assignment,
        "version": project.current_policy,
        "pair": Pair.objects.filter(project=project).first(),
        "adjudicated_pair": Pair.objects.filter(project=project).last(),
        "victim": users["xann2"],
        "judgment": None,
        **users,
        "root": root,
    }


def _page_urls(world, persona: str) -> list[str]:
    """GET page routes (not /api/, not the admin) that `persona` may open, from the permission table."""
    from tests.security.test_permission_table import _url, all_routes

    routes = {key: (route, kwargs) for key, route, kwargs in all_routes()}
    urls = []
    for key, row in TABLE.items():
        name = split_key(key)[0]
        if probe_method(key) != "GET" or name not in routes or row.expected(persona) != OK:
            continue
        route, kwargs = routes[name]
        if route.startswith(("api/", "admin/")) or name in ("logout", "health"):
            continue
        try:
            urls.append(_url(name, route, kwargs, row, world))
        except (Exception, pytest.fail.Exception):  # a route whose object this world lacks
            continue
    return sorted(set(urls))


CHECK = """() => {
    const bad = [];
    for (const el of document.querySelectorAll('*')) {
        for (const attr of el.attributes) {
            const name = attr.name.toLowerCase(), value = (attr.value || '').toLowerCase();
            if (name.startsWith('on') && value.includes('pwned')) bad.push(el.tagName + ' ' + name);
            if ((name === 'href' || name === 'src' || name === 'action' || name === 'srcdoc') &&
                (value.trim().startsWith('javascript:') || value.includes('__pwned'))) bad.push(el.tagName + ' ' + name + '=' + value);
        }
    }
    for (const s of document.querySelectorAll('script')) if ((s.textContent || '').includes('__pwned=')) {
        // json_script blocks hold data, not code: they are fine when their type is not JavaScript.
        if (!s.type || s.type.includes('javascript')) bad.push('script: ' + s.textContent.slice(0, 80));
    }
    return {pwned: typeof window.__pwned === 'undefined' ? null : window.__pwned, bad};
}"""


def _visit_all(page, live_server, urls, dialogs):
    problems = []
    for url in urls:
        response = page.goto(f"{live_server.url}{url}")
        assert response is not None and response.status < 500, f"{url}: {response and response.status}"
        if "/annotate/" in url:
            page.wait_for_function("() => document.getElementById('annotate').dataset.mode === 'work'")
        page.wait_for_timeout(150)  # let onload/onerror handlers (if any slipped through) fire
        result = page.evaluate(CHECK)
        if result["pwned"] is not None or result["bad"]:
            problems.append(f"{url}: {result}")
    assert not problems, "payloads became live markup:\n" + "\n".join(problems)
    assert dialogs == []


@pytest.fixture
def watched(page):
    dialogs: list[str] = []

    def on_dialog(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return page, dialogs


def test_admin_pages_are_inert(watched, login, live_server, hostile_world):
    page, dialogs = watched
    urls = _page_urls(hostile_world, "admin_a")
    assert len(urls) >= 12, urls
    login(page, "xadmin", "/")
    _visit_all(page, live_server, urls, dialogs)
    # The page shows the payloads as text.
    page.goto(f"{live_server.url}/projects/{hostile_world['project'].pk}/")
    assert PAYLOADS[1] in page.inner_text("body")


def test_annotator_pages_are_inert(watched, login, live_server, hostile_world):
    page, dialogs = watched
    urls = _page_urls(hostile_world, "ann_a")
    assert any("/annotate/" in url for url in urls), urls
    login(page, "xann", "/")
    _visit_all(page, live_server, urls, dialogs)


def test_django_admin_pages_are_inert(watched, login, live_server, hostile_world):
    page, dialogs = watched
    project = hostile_world["project"]
    urls = [
        reverse("admin:index"),
        reverse("admin:projects_project_changelist"),
        reverse("admin:projects_project_change", args=[project.pk]),
        reverse("admin:annotation_judgment_changelist"),
        reverse("admin:annotation_prompt_changelist"),
        reverse("admin:snapshots_snapshot_changelist"),
        reverse("admin:training_trainingrun_changelist"),
        reverse("admin:training_trainingrun_change", args=[hostile_world["training_run"].pk]),
        reverse("admin:generation_generationrun_change", args=[hostile_world["generation_run"].pk]),
        reverse("admin:core_auditentry_changelist"),
    ]
    login(page, "xroot", "/")
    _visit_all(page, live_server, urls, dialogs)
