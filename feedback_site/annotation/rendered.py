"""Stored, sanitised HTML of prompts and responses.

Markdown is rendered once per row, not once per request: `Prompt.text_html`,
`Prompt.history_html` and `Response.text_html` hold the output of
`feedback_site.core.rendering.render_markdown` (markdown-it with raw HTML off, then nh3's
allow-list). Rows written with `bulk_create` (imports, generation runs) start with NULL; they
are filled by `fill_project_html` after the import or run commits (`pairs_created`), and, as a
fallback, by the queue the first time a row is shown (`fill_rows`). NULL means "not rendered
yet"; an empty text renders to "".
"""

from __future__ import annotations

import logging

from django.db import connection, transaction

from feedback_site.core.rendering import render_markdown

logger = logging.getLogger(__name__)
_BATCH = 2000
_FILL_AFTER_COMMIT = 20_000


def render_history(history) -> list[str]:
    return [render_markdown(turn.get("content", "")) for turn in (history or [])]


def fill_rows(*, prompts: list[tuple[int, str, list]] = (), responses: list[tuple[int, str]] = ()) -> None:
    """Render and store the HTML of the given rows (ids with their text); used by the queue when it
    meets a row that was never rendered. Safe to run twice: it writes the same value."""
    from feedback_site.annotation.models import Prompt, Response

    for pk, text, history in prompts:
        Prompt.objects.filter(pk=pk).update(text_html=render_markdown(text), history_html=render_history(history))
    for pk, text in responses:
        Response.objects.filter(pk=pk).update(text_html=render_markdown(text))


def fill_project_html(project_id: int | None = None, limit: int | None = None) -> int:
    """Render not-yet-rendered prompts and responses (of one project, or all; at most about
    `limit` rows of each). Returns rows filled."""
    from feedback_site.annotation.models import Prompt, Response

    filled = 0
    prompts = Prompt.objects.filter(text_html__isnull=True)
    responses = Response.objects.filter(text_html__isnull=True)
    if project_id is not None:
        prompts = prompts.filter(project_id=project_id)
        responses = responses.filter(prompt__project_id=project_id)
    while limit is None or filled < limit:
        batch = list(prompts.order_by("id").values_list("id", "text", "history")[:_BATCH])
        if not batch:
            break
        rows = [Prompt(id=pk, text_html=render_markdown(text), history_html=render_history(history)) for pk, text, history in batch]
        Prompt.objects.bulk_update(rows, ["text_html", "history_html"], batch_size=500)
        filled += len(rows)
    done_prompts = filled
    while limit is None or filled - done_prompts < limit:
        batch = list(responses.order_by("id").values_list("id", "text")[:_BATCH])
        if not batch:
            break
        rows = [Response(id=pk, text_html=render_markdown(text)) for pk, text in batch]
        Response.objects.bulk_update(rows, ["text_html"], batch_size=500)
        filled += len(rows)
    return filled


def pairs_created(project_id: int) -> None:
    """Call inside the transaction that bulk-created prompts, responses or pairs. After it commits:
    render their HTML, and on PostgreSQL refresh the planner's statistics of the pair table (with
    autovacuum off or lagging, stale statistics after a large import make the queue query choose
    a sequential scan)."""

    def after_commit():
        # Bounded so a huge import does not hold its request for long: rows past the bound are
        # rendered by the queue the first time they are shown. Both steps are optimisations: a
        # failure is logged, never reported as a failed import (the import has committed).
        try:
            fill_project_html(project_id, limit=_FILL_AFTER_COMMIT)
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE annotation_pair")
                    cursor.execute("ANALYZE annotation_assignment")
        except Exception:  # noqa: BLE001
            logger.exception("after-import rendering or ANALYZE failed for project %s", project_id)

    transaction.on_commit(after_commit)
