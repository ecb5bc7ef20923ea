"""Every page a role can reach by clicking, in headless Chromium, on whichever database the run uses.

For each role the walk logs in through the form, then follows every same-origin link reachable
from the home page (breadth first, up to `MAX_DEPTH` clicks, GET only, never logout or delete
links, query strings and fragments dropped), and asserts that each link answers 200 without a
JavaScript error or a console error (a failed script, style sheet or fetch included). A link the
page shows to a role is a promise that the role may open it, so a 403, a 404 or a bounce to the
login page is a failure too. Every HTML page must carry the site's Content-Security-Policy
(django-csp, settings.CONTENT_SECURITY_POLICY) and the browser must report no violation of it: a
`securitypolicyviolation` listener installed before any page script turns each one into a console
error, so an inline script, an on...= handler or a style= attribute that slips back into a
template fails the walk. `make test` runs this on PostgreSQL and on SQLite (the database
`make run` serves), so every page of the embedded default is opened at least once by each role.

Roles (feedback_site/projects/permissions.py; tests/security/permission_table.py has the per-route
table): site admin (superuser), project admin, ML staff, annotator, and a logged-in user with no
membership (sees no project). There is no read-only "viewer" role in this project.
"""

from __future__ import annotations

import re
from collections import deque
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-123"
MAX_DEPTH = 4
MAX_PAGES = 250  # per role; the walk fails rather than silently stopping short
# Links a walk must not follow: they change state on GET or end the session.
NEVER = ("/accounts/logout/", "delete", "/logout")
ROLES = ("site_admin", "project_admin", "ml_staff", "annotator", "no_membership")


@pytest.fixture
def world(make_user, make_project, add_member, make_pairs, monkeypatch):
    """A project with something behind each tab: judged pairs (one certain disagreement, so the
    adjudication page lists it), a gold pair, a generation run (its task only recorded: no worker
    here), a ready snapshot, and a second project that only the site admin sees."""
    from types import SimpleNamespace

    from feedback_site.annotation import services
    from feedback_site.annotation.models import Pair, Prompt
    from feedback_site.generation.services import generation_launch
    from feedback_site.snapshots.services import snapshot_create
    from workers.celery_app import app

    monkeypatch.setattr(app, "send_task", lambda name, *a, **kw: SimpleNamespace(id=f"walk-{name}"))
    users = {
        "site_admin": make_user("walk_root", superuser=True),
        "project_admin": make_user("walk_padmin"),
        "ml_staff": make_user("walk_staff"),
        "annotator": make_user("walk_ann"),
        "no_membership": make_user("walk_nobody"),
    }
    second = make_user("walk_ann2")
    project = make_project("Walk", criteria=["helpful"], guidelines="Prefer the **correct** answer.")
    make_project("Elsewhere")
    add_member(project, users["project_admin"], "admin")
    add_member(project, users["ml_staff"], "ml_staff")
    add_member(project, users["annotator"], "annotator")
    add_member(project, second, "annotator")
    make_pairs(project, 5, overlap=2)
    # Each annotator prefers one side on every pair they get; pairs both judged are disagreements.
    for user, wanted in ((users["annotator"], "a"), (second, "b")):
        for _ in range(3):
            leased = services.assignment_next(project=project, annotator=user)
            assert leased is not None
            choice = "left" if (wanted == "a") != leased.assignment.swapped else "right"
            services.judgment_submit(
                assignment_id=leased.assignment.pk, annotator=user, choice=choice, criteria={}, time_spent_ms=4_000 + 1_000 * len(wanted)
            )
    gold = Pair.objects.filter(project=project, judgment_count=0).first()
    services.pair_set_gold(pair=gold, actor=users["site_admin"], gold=True, gold_label="a")
    Prompt.objects.create(project=project, text="A prompt with no answers yet?")
    generation_launch(project=project, actor=users["ml_staff"], k=2)
    snapshot_create(project=project, actor=users["ml_staff"])
    return {"users": users, "project": project}


def _same_site(url: str, origin: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and f"{parts.scheme}://{parts.netloc}" == origin


def _normalise(url: str) -> str:
    url, _ = urldefrag(url)
    return url.split("?", 1)[0]


# Django admin's object pages of one model share one template: open one object per model and
# action, not all of them (the site admin's walk would otherwise be mostly admin change forms).
ADMIN_OBJECT = re.compile(r"^/admin/(\w+)/(\w+)/[^/]+/(\w+)/$")


def _shape(path: str) -> str:
    match = ADMIN_OBJECT.match(path)
    return f"/admin/{match[1]}/{match[2]}/<id>/{match[3]}/" if match else path


def walk(context, origin: str) -> dict[str, int]:
    """{path: status} of every page reached; raises AssertionError listing every bad page."""
    page = context.new_page()
    problems: list[str] = []
    console: list[str] = []
    page.on("pageerror", lambda exc: console.append(f"JavaScript error: {exc}"))
    page.on("console", lambda msg: console.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    # Installed before any page script runs (Playwright's init scripts are not subject to the page's
    # CSP); Chromium also logs each refusal as a console error, this names the directive.
    context.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        "'CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber));"
    )
    seen: dict[str, int] = {}
    queue = deque([(f"{origin}/", 0, "(start)")])
    queued = {"/"}
    while queue:
        url, depth, source = queue.popleft()
        path = url[len(origin) :]
        if len(seen) >= MAX_PAGES:
            raise AssertionError(f"more than {MAX_PAGES} pages reachable; raise MAX_PAGES or lower MAX_DEPTH")
        # Fetch first with the context's cookies: a download or a JSON answer is checked without
        # being rendered, and redirects are seen before they are followed.
        response = context.request.get(url, max_redirects=5)
        final = response.url[len(origin) :] if response.url.startswith(origin) else response.url
        seen[path] = response.status
        if response.status != 200:
            problems.append(f"{path} (linked from {source}) answered {response.status}")
            continue
        if final.startswith("/accounts/login/"):
            problems.append(f"{path} (linked from {source}) sent the user to log in")
            continue
        if "text/html" not in response.headers.get("content-type", ""):
            continue
        policy = response.headers.get("content-security-policy", "")
        if "script-src 'self'" not in policy or "unsafe-inline" in policy:
            problems.append(f"{path} (linked from {source}) has no strict Content-Security-Policy: {policy!r}")
        console.clear()
        navigation = page.goto(url, wait_until="load")
        assert navigation is not None and navigation.status == 200, f"{path}: {navigation and navigation.status}"
        if not path.startswith("/admin/"):
            # The site's pages fetch after load (charts, progress polling); Django admin's do not.
            page.wait_for_load_state("networkidle")
        if console:
            problems.append(f"{path} (linked from {source}): {'; '.join(console)}")
        if depth >= MAX_DEPTH:
            continue
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
            target = _normalise(urljoin(page.url, href))
            if not _same_site(target, origin) or any(word in target[len(origin) :] for word in NEVER):
                continue
            shape = _shape(target[len(origin) :])
            if shape not in queued:
                queued.add(shape)
                queue.append((target, depth + 1, path))
    page.close()
    assert not problems, "pages that failed:\n" + "\n".join(problems)
    return seen


@pytest.mark.parametrize("role", ROLES)
def test_every_linked_page_answers_200(browser, live_server, world, role):
    from django.db import connection

    user = world["users"][role]
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/accounts/login/?next=/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.press("#id_password", "Enter")
        page.wait_for_url(f"{live_server.url}/")
        page.close()
        seen = walk(context, live_server.url)
    finally:
        context.close()
    project = world["project"]
    opened = set(seen)
    # The walk really reached the pages this role works on (guards against a walk that stops early).
    expected = {
        "site_admin": {f"/projects/{project.pk}/", f"/projects/{project.pk}/quality/", "/admin/", f"/projects/{project.pk}/snapshots/"},
        "project_admin": {f"/projects/{project.pk}/", f"/projects/{project.pk}/quality/"},
        "ml_staff": {
            f"/projects/{project.pk}/",
            f"/projects/{project.pk}/quality/",
            f"/projects/{project.pk}/quality/adjudication/",
            f"/projects/{project.pk}/generate/",
        },
        "annotator": {f"/projects/{project.pk}/annotate/", f"/projects/{project.pk}/quality/me/"},
        "no_membership": {"/", "/accounts/token/"},
    }[role]
    assert expected <= opened, f"on {connection.vendor}, {role} never reached {sorted(expected - opened)}; opened {sorted(opened)}"
    if role == "no_membership":
        assert not any(p.startswith("/projects/") for p in opened), sorted(opened)
    if role == "annotator":
        assert f"/projects/{project.pk}/quality/" not in opened, "annotators must not be shown the staff dashboard"
