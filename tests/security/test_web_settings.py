"""Web security settings: CSRF on every form, the production profile (`check --deploy` clean,
secure cookies and headers), no secret in the repository, uploads never served as pages."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from tests.security.permission_table import OK, TABLE, probe_method, split_key
from tests.security.test_permission_table import _url, all_routes

REPO = Path(__file__).resolve().parents[2]


def _form_posts():
    """Every page route (not /api/) that accepts a POST, from the permission table, with the
    first persona allowed to make it."""
    routes = {key: (route, kwargs) for key, route, kwargs in all_routes()}
    for key, row in TABLE.items():
        name = split_key(key)[0]
        if probe_method(key) != "POST" or name not in routes or routes[name][0].startswith("api/"):
            continue
        who = next((p for p in ("admin_a", "staff_a", "ann_a", "anon") if row.expected(p) == OK), None)
        yield name, who, row


@pytest.mark.django_db
def test_every_form_post_without_a_csrf_token_is_403(world, site_admin):
    checked = []
    for name, who, row in _form_posts():
        route, kwarg_names = {k: (r, kw) for k, r, kw in all_routes()}[name]
        url = _url(name, route, kwarg_names, row, world)
        user = site_admin if who is None else (None if who == "anon" else world[who])  # project-create: site staff
        client = Client(enforce_csrf_checks=True)
        if user is not None:
            client.force_login(user)
        response = client.post(url, row.data or {})
        assert response.status_code == 403, f"POST {url} ({name}) without a CSRF token answered {response.status_code}"
        assert b"CSRF" in response.content
        checked.append(name)
    # The login form and the API's session-authenticated writes are CSRF-protected too.
    assert Client(enforce_csrf_checks=True).post(reverse("login"), {"username": "x", "password": "y"}).status_code == 403
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["admin_a"])
    response = client.post(f"/api/v1/projects/{world['project'].pk}/guidelines/", {"text": "x"}, content_type="application/json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    assert {"project-settings", "project-member-add", "project-imports", "training-run-cancel", "api-token"} <= set(checked)


def _production_env(**extra) -> dict:
    env = {
        **os.environ,
        "DJANGO_PROFILE": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "feedback.example.org",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://feedback.example.org",
        "DJANGO_DEBUG": "",
        **extra,
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by tests/conftest.py for Playwright; never in production
    return env


def test_check_deploy_is_clean_in_the_production_profile():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=REPO,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Every deployment and security check passes. drf-spectacular's schema-naming warnings
    # (W001/W002) are about API documentation, not deployment, and are left to the API owners.
    codes = re.findall(r"\(([a-z_]+\.[EWCI]\d+)\)", output)
    assert [c for c in codes if not c.startswith("drf_spectacular.")] == [], output


def test_production_refuses_to_start_without_a_real_secret_key():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO,
        env=_production_env(DJANGO_SECRET_KEY="short"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr


PRODUCTION_PROBE = r"""
import django, json, os
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
client = Client()
# An API answer: it needs neither the database nor collected static files, and the security
# middleware sets the same headers on every response.
plain = client.get("/api/v1/projects/", HTTP_HOST="feedback.example.org")
secure = client.get("/api/v1/projects/", HTTP_HOST="feedback.example.org", HTTP_X_FORWARDED_PROTO="https")
from django.conf import settings
print(json.dumps({
    "plain_status": plain.status_code, "plain_location": plain.get("Location", ""),
    "status": secure.status_code,
    "hsts": secure.get("Strict-Transport-Security", ""),
    "xfo": secure.get("X-Frame-Options", ""),
    "nosniff": secure.get("X-Content-Type-Options", ""),
    "referrer": secure.get("Referrer-Policy", ""),
    "coop": secure.get("Cross-Origin-Opener-Policy", ""),
    "csrf_secure": settings.CSRF_COOKIE_SECURE, "csrf_samesite": settings.CSRF_COOKIE_SAMESITE,
    "debug": settings.DEBUG,
    "session_secure": settings.SESSION_COOKIE_SECURE, "session_httponly": settings.SESSION_COOKIE_HTTPONLY,
}))
"""


def test_production_headers_and_cookies():
    import json

    result = subprocess.run(
        [sys.executable, "-c", PRODUCTION_PROBE],
        cwd=REPO,
        env=_production_env(DJANGO_SETTINGS_MODULE="feedback_site.settings"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    # Plain HTTP is redirected to HTTPS.
    assert answer["plain_status"] == 301 and answer["plain_location"].startswith("https://")
    assert answer["status"] == 401
    assert "max-age=31536000" in answer["hsts"] and "includeSubDomains" in answer["hsts"]
    assert answer["xfo"] == "DENY" and answer["nosniff"] == "nosniff"
    assert answer["referrer"] == "same-origin" and answer["coop"] == "same-origin"
    assert answer["csrf_secure"] and answer["csrf_samesite"] == "Lax"
    assert answer["session_secure"] and answer["session_httponly"] and answer["debug"] is False


SECRET_PATTERNS = [
    re.compile(r"-----BEGIN (RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"ghp_[0-9A-Za-z]{36}"),  # GitHub token
    re.compile(r"hf_[0-9A-Za-z]{30,}"),  # Hugging Face token
    re.compile(r"sk-[0-9A-Za-z]{32,}"),  # OpenAI-style key
    re.compile(r"""(?i)(secret_key|password|api_key)\s*[:=]\s*["'][^"'\s]{24,}["']"""),
]
# Known, deliberate values: the embedded profile's labelled laptop key, test passwords.
ALLOWED = ["embedded-insecure-key-for-local-use-only"]


def test_no_secret_in_the_repository():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    found = []
    for name in files:
        path = REPO / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        text = path.read_text(errors="ignore")
        for pattern in SECRET_PATTERNS:
            for match in pattern.finditer(text):
                if not any(a in match.group(0) for a in ALLOWED):
                    found.append(f"{name}: {match.group(0)[:60]}")
    assert not found, "possible secrets committed:\n" + "\n".join(found)
    env_files = [name for name in files if Path(name).name == ".env" or Path(name).name.endswith((".pem", ".key"))]
    assert not env_files, f"environment or key files are tracked: {env_files}"


@pytest.mark.django_db
def test_uploads_are_never_served(world, settings):
    """Imports are parsed in memory and stored as rows; no route serves uploaded files."""
    from django.urls import Resolver404, resolve

    assert not settings.MEDIA_URL or settings.MEDIA_URL == "/"
    for key, route, _ in all_routes():
        assert not route.startswith(("media", "uploads")), f"{key} serves /{route}"
    client = Client()
    client.force_login(world["admin_a"])
    payload = b'{"prompt": "<script>window.__pwned=1</script>", "response_a": "a", "response_b": "b"}\n'
    imports = reverse("project-imports", args=[world["project"].pk])
    assert client.post(imports, {"kind": "pairs", "file": _upload("evil.jsonl", payload)}).status_code == 302
    # An HTML file is refused by name before it is parsed.
    assert client.post(imports, {"kind": "pairs", "file": _upload("evil.html", payload)}).status_code == 400
    for name in ("evil.jsonl", "evil.html"):
        for path in (f"/media/{name}", f"/uploads/{name}", f"/static/{name}", f"/{name}"):
            assert client.get(path).status_code == 404, path
        for path in (f"/media/{name}", f"/uploads/{name}", f"/{name}"):
            with pytest.raises(Resolver404):
                resolve(path)
        # Nothing with the upload's name was written under the artifact folder either.
        assert not list(Path(settings.ARTIFACTS_DIR).rglob(name))


def _upload(name, data):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="text/html")
