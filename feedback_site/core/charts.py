"""Chart data for the site's one chart module, core/static/core/charts.js (drawn with Chart.js).

Nothing here draws. A view builds a chart with one of these functions and its template writes it
with `{% include "core/_chart.html" with chart=... %}` (and `core/_chart_scripts.html` in its
scripts block): the data goes into the page as JSON (`json_script`) and the browser draws it.

Every chart has an aria-label summary, and a category chart (bars, lines over hours or weeks)
also carries a table of the same numbers in a <details> under it, so they stay readable without
JavaScript. The leaderboard and the timeline list their numbers in their own tables already.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def _number(value) -> str:
    return "—" if value is None else f"{value:,.4g}" if isinstance(value, float) else f"{value:,}"


def series_chart(
    name: str,
    kind: str,
    *,
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    x_label: str,
    y_label: str,
    empty: str = "No data yet",
    y_max: float | None = None,
    integer: bool = False,
    fmt: Callable[[float | None], str] = _number,
) -> dict:
    """Bars ("bar") or lines ("line") over shared category labels, one series per entry of
    `series` (None leaves a gap in a line)."""
    assert kind in ("bar", "line"), kind
    labels = [str(label) for label in labels]
    if not any(v is not None for values in series.values() for v in values):
        return {"id": name, "empty": empty}
    return {
        "id": name,
        "data_id": f"{name}-data",
        "summary": f"{title}: {', '.join(series)} over {len(labels)} {x_label.lower()} values; the numbers are in the table below.",
        "spec": {
            "kind": kind,
            "title": title,
            "x_label": x_label,
            "y_label": y_label,
            "labels": labels,
            "series": [{"label": label, "values": list(values)} for label, values in series.items()],
            "y_max": y_max,
            "integer": integer,
        },
        "table": {
            "head": [x_label, *series],
            "rows": [(label, [fmt(values[i]) for values in series.values()]) for i, label in enumerate(labels)],
        },
    }


def interval_chart(name: str, *, title: str, rows: Sequence[dict], x_label: str, value_label: str, interval_label: str) -> dict:
    """A dot at each row's value and a bar over its [low, high] interval, one row per item; rows
    are dicts with label, value, low, high and highlight (drawn in the 'current' colour)."""
    if not rows:
        return {"id": name, "empty": "No comparisons yet."}
    lows, highs = [r["low"] for r in rows], [r["high"] for r in rows]
    return {
        "id": name,
        "data_id": f"{name}-data",
        "height": 50 + 28 * len(rows),
        "summary": f"{title}: {len(rows)} rows, {value_label} with {interval_label} from {min(lows):.0f} to {max(highs):.0f}; the table below lists them.",
        "spec": {
            "kind": "interval",
            "title": title,
            "x_label": x_label,
            "value_label": value_label,
            "interval_label": interval_label,
            "rows": [{k: r[k] for k in ("label", "value", "low", "high", "highlight")} for r in rows],
        },
    }


def lineage_chart(
    name: str, *, title: str, nodes: Sequence[dict], edges: Sequence[tuple[int, int]], lanes: Sequence[str], groups: Sequence[dict]
) -> dict:
    """Nodes at (x, lane) with a short label and a name, in groups (key, label, color, radius),
    and edges between node indexes (parent, child)."""
    if not nodes:
        return {"id": name, "empty": "No versions yet."}
    return {
        "id": name,
        "data_id": f"{name}-data",
        "height": 170,
        "summary": f"{title}: {len(nodes)} versions and {len(edges)} parent-child links; the table below lists them.",
        "spec": {
            "kind": "lineage",
            "title": title,
            "x_label": "",
            "nodes": list(nodes),
            "edges": [list(e) for e in edges],
            "lanes": list(lanes),
            "groups": list(groups),
        },
    }
