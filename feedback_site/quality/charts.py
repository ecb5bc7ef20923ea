"""Small inline SVG charts drawn on the server (no JavaScript, no chart library)."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, PAD_L, PAD_B, PAD_T, PAD_R = 560, 180, 44, 28, 10, 10


def _frame(inner: str, title: str) -> SafeString:
    return mark_safe(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{inner}</svg>"
    )


def _axis(y_max: float, y_label_fmt, bottom: float = 0.0) -> str:
    plot_h = HEIGHT - PAD_B - PAD_T
    parts = [f'<line x1="{PAD_L}" y1="{HEIGHT - PAD_B}" x2="{WIDTH - PAD_R}" y2="{HEIGHT - PAD_B}" stroke="#c8ccd4"/>']
    for frac in (0, 0.5, 1):
        y = HEIGHT - PAD_B - frac * plot_h
        parts.append(
            f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="10" fill="#687082">{escape(y_label_fmt(bottom + frac * (y_max - bottom)))}</text>'
        )
        if frac:
            parts.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{WIDTH - PAD_R}" y2="{y:.1f}" stroke="#eef0f4"/>')
    return "".join(parts)


def bar_chart(items: list[tuple[str, float]], *, title: str, fmt=lambda v: f"{v:,.0f}") -> SafeString:
    """Vertical bars with a label under each."""
    if not items:
        return _frame('<text x="50%" y="50%" text-anchor="middle" fill="#687082">No data yet</text>', title)
    y_max = max(v for _, v in items) or 1
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_B - PAD_T
    step = plot_w / len(items)
    parts = [_axis(y_max, fmt)]
    for i, (label, value) in enumerate(items):
        h = plot_h * value / y_max
        x = PAD_L + i * step + step * 0.15
        parts.append(
            f'<rect x="{x:.1f}" y="{HEIGHT - PAD_B - h:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" fill="#3b6fe0">'
            f"<title>{escape(label)}: {escape(fmt(value))}</title></rect>"
        )
        if len(items) <= 16 or i % max(1, len(items) // 8) == 0:
            parts.append(
                f'<text x="{x + step * 0.35:.1f}" y="{HEIGHT - PAD_B + 14}" text-anchor="middle" font-size="10" fill="#687082">{escape(label)}</text>'
            )
    return _frame("".join(parts), title)


def line_chart(
    series: dict[str, list[tuple[str, float | None]]], *, title: str, y_max: float | None = None, fmt=lambda v: f"{v:.2f}"
) -> SafeString:
    """One polyline per series over shared x labels (None values leave a gap)."""
    colours = ["#3b6fe0", "#d9822b", "#2e9e5b", "#b8336a"]
    labels = next(iter(series.values()), [])
    values = [v for points in series.values() for _, v in points if v is not None]
    if not values:
        return _frame('<text x="50%" y="50%" text-anchor="middle" fill="#687082">No overlapping judgments yet</text>', title)
    top = y_max if y_max is not None else max(values) or 1
    bottom = min(0.0, min(values))
    span = (top - bottom) or 1
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_B - PAD_T
    n = max(len(labels), 1)
    xs = [PAD_L + (plot_w * (i + 0.5) / n) for i in range(n)]
    parts = [_axis(top, fmt, bottom)]
    for i, (label, _) in enumerate(labels):
        if n <= 12 or i % max(1, n // 6) == 0:
            parts.append(
                f'<text x="{xs[i]:.1f}" y="{HEIGHT - PAD_B + 14}" text-anchor="middle" font-size="10" fill="#687082">{escape(label)}</text>'
            )
    for k, (name, points) in enumerate(series.items()):
        colour = colours[k % len(colours)]
        coords = []
        for i, (label, value) in enumerate(points):
            if value is None:
                continue
            y = HEIGHT - PAD_B - plot_h * (value - bottom) / span
            coords.append(f"{xs[i]:.1f},{y:.1f}")
            parts.append(
                f'<circle cx="{xs[i]:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>{escape(name)} {escape(label)}: {escape(fmt(value))}</title></circle>'
            )
        if len(coords) > 1:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(coords)}"/>')
        parts.append(f'<text x="{PAD_L + 8 + 150 * k}" y="{PAD_T + 10}" font-size="11" fill="{colour}">{escape(name)}</text>')
    return _frame("".join(parts), title)
