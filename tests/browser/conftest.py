"""Playwright fixtures: Debian's Chromium, headless, against pytest-django's live_server.

Chromium comes from the distribution (`apt-get install chromium`, done by the Makefile), not from
`playwright install`, because the machines that run the suite have no internet access.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-results" / "browser"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The production hasher costs ~0.5 s per user and per login; the live server thread shares
    # these settings, so logging in through the form stays fast too.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        # Leave a picture of what the browser showed; CI keeps test-results/ as an artifact.
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


@pytest.fixture
def login(live_server):
    """Log in through the real login form, landing on `next`."""

    def do(page, username: str, next_path: str, password: str = "pw-for-tests-123"):
        page.goto(f"{live_server.url}/accounts/login/?next={next_path}")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.press("#id_password", "Enter")
        page.wait_for_url(f"{live_server.url}{next_path}")

    return do
