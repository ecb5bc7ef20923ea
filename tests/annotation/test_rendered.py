"""Stored HTML of prompts and responses: rendered once (after an import, or the first time a row is
shown), sanitised like before, and what the annotator API returns."""

from __future__ import annotations

import pytest

from feedback_site.annotation import services
from feedback_site.annotation.models import Prompt, Response
from feedback_site.annotation.rendered import fill_project_html
from feedback_site.annotation.selectors import assignment_payload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("queue_path")]


def test_rows_without_html_are_rendered_on_first_display_and_stored(project, annotator, make_pairs):
    make_pairs(project, 1, texts=lambda i: ("**bold** <script>alert(1)</script>", "`code`"))
    Prompt.objects.update(history=[{"role": "user", "content": "_hi_"}, {"role": "assistant", "content": "hello"}])
    assert not Response.objects.filter(text_html__isnull=False).exists()
    leased = services.assignment_next(project=project, annotator=annotator)
    payload = leased.payload or assignment_payload(leased.assignment)
    sides = {payload["left"]["text"]: payload["left"]["html"], payload["right"]["text"]: payload["right"]["html"]}
    assert sides["`code`"] == "<p><code>code</code></p>\n"
    assert "<script>" not in sides["**bold** <script>alert(1)</script>"]
    assert "&lt;script&gt;" in sides["**bold** <script>alert(1)</script>"]
    assert [t["html"] for t in payload["prompt"]["history"]] == ["<p><em>hi</em></p>\n", "<p>hello</p>\n"]
    if leased.payload is not None:  # the SQL path stores what it rendered
        assert not Response.objects.filter(text_html__isnull=True).exists()
        assert Prompt.objects.get().history_html == ["<p><em>hi</em></p>\n", "<p>hello</p>\n"]
    # A reload shows the same thing from the stored columns.
    again = services.assignment_next(project=project, annotator=annotator)
    shown_again = dict(again.payload or assignment_payload(again.assignment))
    assert shown_again.pop("expires_at") and shown_again == {k: v for k, v in payload.items() if k != "expires_at"}


def test_fill_project_html_renders_what_is_missing(project, make_pairs):
    make_pairs(project, 3)
    assert fill_project_html(project.pk) == 3 + 6
    assert fill_project_html(project.pk) == 0
    assert Response.objects.filter(text_html="<p>Answer A0</p>\n").count() == 1
