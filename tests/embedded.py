"""Read what a page embeds with Django's `json_script` (chart data above all)."""

from __future__ import annotations

import json
import re


def embedded_json(html: str | bytes, element_id: str):
    """The JSON of `<script id="element_id" type="application/json">` in `html`."""
    if isinstance(html, bytes):
        html = html.decode()
    match = re.search(rf'<script id="{re.escape(element_id)}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"the page embeds no JSON with id {element_id!r}"
    return json.loads(match.group(1))


def has_embedded(html: str | bytes, element_id: str) -> bool:
    if isinstance(html, bytes):
        html = html.decode()
    return f'<script id="{element_id}" type="application/json">' in html
