"""Issue 19, points 10 and 13: every error under /api/ is JSON in the documented shape
(`{"error": code, "detail": message}`), debug mode or not; pages get friendly error pages that list
no routes; an empty or missing upload is named like the other import errors; `make run` serves on
loopback only with DEBUG off unless DJANGO_DEBUG=1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import path
from rest_framework.test import APIClient

from feedback_site.projects.models import ImportBatch

REPO = Path(__file__).resolve().parents[2]


def _assert_api_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error", "detail"} and body["error"] == code and body["detail"], body
    return body


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_unknown_api_routes_are_json_404s_even_in_debug(debug, settings, project, ml_staff):
    settings.DEBUG = debug
    client = Client()
    client.force_login(ml_staff)
    for url in (
        "/api/v1/projects/abc/",  # a non-integer id matches no route
        "/api/v1/no-such-thing",
        "/api/v2/projects/",
        f"/api/v1/projects/{project.pk}/nope/",
    ):
        body = _assert_api_error(client.get(url), 404, "not_found")
        assert url in body["detail"] and "urlpatterns" not in str(body)
    # Not logged in: still JSON (the route does not exist, so there is nothing to log in to).
    _assert_api_error(Client().get("/api/v1/projects/abc/"), 404, "not_found")
    # A view's own 404 (a project id that does not exist) keeps its service message.
    _assert_api_error(client.get("/api/v1/projects/999999/"), 404, "not_found")


@pytest.mark.django_db
def test_wrong_method_under_api_is_a_json_405_naming_the_allowed_ones():
    # /api/v1/health is a plain Django view (no DRF): its 405 used to have an empty body.
    response = Client().post("/api/v1/health")
    body = _assert_api_error(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"] and "POST" in body["detail"]
    # A DRF view's 405 has the same shape.
    _assert_api_error(Client().delete("/api/v1/health"), 405, "method_not_allowed")


def _boom(request):
    raise RuntimeError("kaboom-secret-detail")


# A URLconf with a view that fails, under /api/ and as a page (used with pytest.mark.urls).
urlpatterns = [path("api/v1/boom", _boom), path("boom", _boom)]


@pytest.mark.urls(__name__)
def test_a_server_error_under_api_is_json_and_a_page_error_is_friendly(settings):
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    body = _assert_api_error(client.get("/api/v1/boom"), 500, "server_error")
    assert "kaboom" not in str(body)
    page = client.get("/boom")
    assert page.status_code == 500 and b"Something went wrong" in page.content and b"kaboom" not in page.content


@pytest.mark.django_db
def test_unknown_page_is_a_friendly_404_that_lists_no_routes(settings, ml_staff):
    settings.DEBUG = False
    client = Client()
    client.force_login(ml_staff)
    response = client.get("/no/such/page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "Page not found" in html and "/no/such/page/" in html and "Back to your projects" in html
    # Django's debug page lists every URL pattern; the friendly page names none of them.
    assert "api/v1/" not in html and "urlpatterns" not in html.lower() and "admin/" not in html


@pytest.mark.django_db
def test_an_empty_or_missing_upload_is_named_like_other_import_errors(project, ml_staff):
    api = APIClient()
    api.force_authenticate(ml_staff)
    url = f"/api/v1/projects/{project.pk}/imports/"
    empty = api.post(url, {"kind": "pairs", "file": SimpleUploadedFile("pairs.jsonl", b"")}, format="multipart")
    body = _assert_api_error(empty, 400, "empty_file")
    assert "pairs.jsonl" in body["detail"] and "empty" in body["detail"]
    missing = api.post(url, {"kind": "pairs"}, format="multipart")
    assert "file" in _assert_api_error(missing, 400, "no_file")["detail"]
    # The same shape as a parse error, which names the line.
    bad = api.post(url, {"kind": "pairs", "file": SimpleUploadedFile("pairs.jsonl", b"{not json\n")}, format="multipart")
    assert _assert_api_error(bad, 400, "bad_file")["detail"]
    assert not ImportBatch.objects.filter(project=project).exists()


def _embedded_settings(**env) -> dict:
    probe = "import django, json; django.setup(); from django.conf import settings; print(json.dumps(settings.DEBUG))"
    environ = {k: v for k, v in os.environ.items() if k not in ("DJANGO_DEBUG", "DJANGO_PROFILE")}
    environ.update(DJANGO_SETTINGS_MODULE="feedback_site.settings", **env)
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=environ, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_make_run_is_loopback_only_with_debug_off_unless_asked():
    script = (REPO / "scripts" / "run_embedded.sh").read_text()
    runserver = [line for line in script.splitlines() if "runserver" in line and not line.lstrip().startswith("#")]
    assert runserver and all("runserver 127.0.0.1:" in line for line in runserver), runserver
    assert "0.0.0.0" not in script and "DJANGO_DEBUG=1" not in script.replace("unless DJANGO_DEBUG=1", "")
    assert _embedded_settings() == "false"  # the embedded profile, DJANGO_DEBUG unset
    assert _embedded_settings(DJANGO_DEBUG="1") == "true"
