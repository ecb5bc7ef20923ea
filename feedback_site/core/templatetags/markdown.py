"""`{{ text|markdown }}`: the same markdown rendering and sanitising as the annotate page
(`core.rendering.render_markdown`: raw HTML escaped, then an nh3 allow-list), for pages that show
user or model text outside the task pages (guidelines, adjudication)."""

from __future__ import annotations

from django import template
from django.utils.safestring import mark_safe

from feedback_site.core.rendering import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text) -> str:
    # render_markdown escapes raw HTML and allow-lists the tags it produces, so this is safe.
    return mark_safe(render_markdown(str(text or "")))  # noqa: S308
