"""The annotator page shell (Django test client): access rules and what the HTML contains.

The page never renders a pair server-side; the pair comes from the API and the JS inserts only
its sanitised `html`. These tests pin that choice down.
"""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The production hasher costs ~0.5 s per user; these tests are about the page, not hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def page_url(project):
    return reverse("annotate", args=[project.pk])


def test_url_shape(project):
    assert reverse("annotate", args=[project.pk]) == f"/projects/{project.pk}/annotate/"


def test_requires_login(client, page_url):
    response = client.get(page_url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert "next=" in response["Location"]


def test_non_member_gets_404(client, make_user, page_url):
    client.force_login(make_user("outsider"))
    assert client.get(page_url).status_code == 404


def test_missing_project_gets_404(client, annotator):
    client.force_login(annotator)
    assert client.get(reverse("annotate", args=[999_999])).status_code == 404


@pytest.mark.parametrize("role", ["annotator", "ml_staff", "admin"])
def test_every_member_role_gets_the_page(client, make_user, add_member, project, page_url, role):
    user = make_user(f"member_{role}")
    add_member(project, user, role)
    client.force_login(user)
    assert client.get(page_url).status_code == 200


def test_post_is_not_allowed(client, annotator, page_url):
    client.force_login(annotator)
    assert client.post(page_url).status_code == 405


def test_page_shows_shortcuts_guideline_and_config(client, annotator, project, site_admin, page_url):
    from feedback_site.projects.services import guideline_publish

    guideline_publish(project=project, author=site_admin, text="Old text")
    guideline_publish(project=project, author=site_admin, text="Prefer **concise** answers.\n\n<script>alert(1)</script>")
    client.force_login(annotator)
    response = client.get(page_url)
    assert response.status_code == 200
    html = response.content.decode()
    # Shortcut help is on the page, not only behind "?".
    for text in ("Left is better", "Right is better", "Both bad", "Skip this pair", "Submit the judgment"):
        assert text in html
    assert "<kbd>Enter</kbd>" in html and "<kbd>S</kbd>" in html and "<kbd>?</kbd>" in html
    # The newest guideline version, rendered as sanitised markdown.
    assert "version 2" in html
    assert "<strong>concise</strong>" in html
    assert "Old text" not in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # The empty state text and the JS are there; the JS config points at the real API routes.
    assert "Nothing left to annotate — thank you" in html
    assert "annotation/annotate.js" in html
    config = json.loads(re.search(r'<script id="annotate-config" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert config["projectId"] == project.pk
    assert config["guidelineVersion"] == 2
    assert config["urls"]["next"] == reverse("api-assignment-next", args=[project.pk])
    assert config["urls"]["judgment"] == reverse("api-judgment", args=[0])
    assert config["csrfToken"]


def test_page_without_guideline_says_so(client, annotator, page_url):
    client.force_login(annotator)
    html = client.get(page_url).content.decode()
    assert "no published guidelines" in html


def test_page_never_contains_the_pair(client, annotator, project, make_pairs, page_url):
    """Responses come only through the API; the page HTML holds none of their text, even when
    the annotator already holds a lease on a pair."""
    marker_a = "<script>window.__xss=1</script> RESPONSE-A-MARKER"
    marker_b = "<img src=x onerror=alert(2)> RESPONSE-B-MARKER"
    make_pairs(project, 1, texts=lambda i: (marker_a, marker_b))
    client.force_login(annotator)
    # Lease the pair first so a server-side "resume" could not be the reason it is missing.
    assert client.post(reverse("api-assignment-next", args=[project.pk])).status_code == 200
    html = client.get(page_url).content.decode()
    assert "RESPONSE-A-MARKER" not in html
    assert "RESPONSE-B-MARKER" not in html
    assert "Question 0?" not in html
    assert "window.__xss" not in html
    assert "onerror" not in html


def test_config_is_json_escaped(client, make_user, add_member, make_project, site_admin):
    """A hostile project name cannot break out of the page."""
    project = make_project(name='</script><script>alert("name")</script>')
    user = make_user("ann_x")
    add_member(project, user, "annotator")
    client.force_login(user)
    html = client.get(reverse("annotate", args=[project.pk])).content.decode()
    assert '<script>alert("name")</script>' not in html
