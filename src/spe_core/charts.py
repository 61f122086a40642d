"""Small, dependency-free SVG charts for the HTML report.

Every chart is one self-contained ``<svg>`` element (no scripts, no fonts or
files fetched at view time), with a ``<title>`` for accessibility and a
``data-chart`` attribute that tests use to find it.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spe_core.flow import FlowReport, ProcessMap

__all__ = ["PALETTE", "bars", "empty", "fever", "process_map", "stacked_area"]

PALETTE = (
    "#3366cc",
    "#dc3912",
    "#ff9900",
    "#109618",
    "#990099",
    "#0099c6",
    "#dd4477",
    "#66aa00",
    "#b82e2e",
    "#316395",
)
W, H = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 30, 48


def _frame(name: str, title: str, body: str, legend: Sequence[tuple[str, str]] = ()) -> str:
    items = "".join(
        f'<rect x="{LEFT + i * 150}" y="{H - 16}" width="10" height="10" fill="{colour}"/>'
        f'<text x="{LEFT + i * 150 + 14}" y="{H - 7}" font-size="11">{escape(label)}</text>'
        for i, (label, colour) in enumerate(legend)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" data-chart="{escape(name)}" role="img" '
        f'viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif">'
        f"<title>{escape(title)}</title>"
        f'<rect width="{W}" height="{H}" fill="#ffffff"/>'
        f'<text x="{LEFT}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>'
        f"{body}{items}</svg>"
    )


def _axes(ymax: float, labels: Sequence[str]) -> str:
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    out = [
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{W - RIGHT}" y2="{TOP + plot_h}" '
        'stroke="#333"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#333"/>',
    ]
    for k in range(5):
        value = ymax * k / 4
        y = TOP + plot_h - plot_h * k / 4
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{value:.3g}</text>"
        )
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#eee"/>')
    step = max(1, len(labels) // 8)
    for i, label in enumerate(labels):
        if i % step == 0:
            x = LEFT + plot_w * (i + 0.5) / max(1, len(labels))
            out.append(
                f'<text x="{x:.1f}" y="{TOP + plot_h + 14}" font-size="10" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    return "".join(out)


def _xy(i: int, n: int, value: float, ymax: float) -> tuple[float, float]:
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    x = LEFT + plot_w * (i + 0.5) / max(1, n)
    y = TOP + plot_h - plot_h * (value / ymax if ymax else 0)
    return x, y


def process_map(pmap: ProcessMap, report: FlowReport | None = None) -> str:
    """The process map as one box per phase, left to right, joined by arrows: each box
    shows the phase's name, goal, owner, CRM stages and (given a report) its current
    figures. ``data-chart="process-map"``."""
    w, h, gap = 220, 150, 30
    width = len(pmap.phases) * (w + gap) + gap
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" data-chart="process-map" '
        f'viewBox="0 0 {width} {h + 40}" width="{width}" height="{h + 40}" '
        'font-family="sans-serif"><title>Process map</title>'
    ]
    for i, phase in enumerate(pmap.phases):
        x = gap + i * (w + gap)
        parts.append(
            f'<rect x="{x}" y="20" width="{w}" height="{h}" rx="10" '
            'fill="#eef3fb" stroke="#3366cc"/>'
        )
        rows = [
            (phase.name.replace("_", " ").title(), 13, "bold"),
            (phase.goal[:34], 10, "normal"),
            (phase.goal[34:68], 10, "normal"),
            (f"owner: {phase.owner.value}", 10, "normal"),
            (f"stages: {', '.join(phase.stages)}"[:36] if phase.stages else "", 9, "normal"),
        ]
        figures = [] if report is None else report.figure_lines(phase.name)
        rows += [(line, 10, "normal") for line in figures]
        for k, (text, size, weight) in enumerate(r for r in rows if r[0]):
            parts.append(
                f'<text x="{x + 10}" y="{42 + k * 16}" font-size="{size}" '
                f'font-weight="{weight}">{escape(text)}</text>'
            )
        if i:
            parts.append(
                f'<path d="M{x - gap + 4},{20 + h / 2} L{x - 4},{20 + h / 2}" '
                'stroke="#333" marker-end="url(#arrow)"/>'
            )
    parts.insert(
        1,
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="6" '
        'refY="3" orient="auto"><path d="M0,0 L6,3 L0,6 z" fill="#333"/>'
        "</marker></defs>",
    )
    parts.append("</svg>")
    return "".join(parts)


def empty(name: str, title: str, message: str) -> str:
    """A drawn chart frame saying why there is nothing to plot yet."""
    body = (
        f'<text x="{W / 2}" y="{H / 2}" font-size="13" text-anchor="middle" '
        f'fill="#666">{escape(message)}</text>'
    )
    return _frame(name, title, body)


def fever(
    name: str,
    title: str,
    labels: Sequence[str],
    level: Sequence[float],
    target: Sequence[float],
    red_below: float,
    green_above: float,
) -> str:
    """Buffer level against its target, over green / yellow / red zone bands."""
    if not labels:
        return empty(name, title, "no queue activity recorded yet")
    ymax = max([*level, *target, 1.0]) * 1.1
    n = len(labels)
    body = [_axes(ymax, labels)]
    for i, t in enumerate(target):
        x0, _ = _xy(i, n, 0, ymax)
        half = (W - LEFT - RIGHT) / max(1, n) / 2
        for lo, hi, colour in (
            (0, red_below, "#f8d0d0"),
            (red_below, green_above, "#fbefc4"),
            (green_above, 1.2, "#d3efd3"),
        ):
            _, y_hi = _xy(i, n, min(hi * t, ymax), ymax)
            _, y_lo = _xy(i, n, lo * t, ymax)
            body.append(
                f'<rect x="{x0 - half:.1f}" y="{y_hi:.1f}" width="{2 * half:.1f}" '
                f'height="{max(0.0, y_lo - y_hi):.1f}" fill="{colour}"/>'
            )
    body.append(_axes(ymax, labels))
    points = " ".join(
        f"{x:.1f},{y:.1f}" for x, y in (_xy(i, n, v, ymax) for i, v in enumerate(level))
    )
    target_points = " ".join(
        f"{x:.1f},{y:.1f}" for x, y in (_xy(i, n, v, ymax) for i, v in enumerate(target))
    )
    body.append(
        f'<polyline points="{target_points}" fill="none" stroke="#555" '
        'stroke-dasharray="5,4" stroke-width="1.5"/>'
    )
    body.append(
        f'<polyline points="{points}" fill="none" stroke="{PALETTE[0]}" stroke-width="2.5"/>'
    )
    for i, v in enumerate(level):
        x, y = _xy(i, n, v, ymax)
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{PALETTE[0]}"/>')
    legend = [
        ("queue level", PALETTE[0]),
        ("target", "#555"),
        ("red zone", "#f8d0d0"),
        ("green zone", "#d3efd3"),
    ]
    return _frame(name, title, "".join(body), legend)


def stacked_area(
    name: str, title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]
) -> str:
    """Cumulative flow: one band per series, stacked bottom to top."""
    if not labels or not series:
        return empty(name, title, "no flow recorded yet")
    n = len(labels)
    totals = [sum(s[1][i] for s in series) for i in range(n)]
    ymax = max([*totals, 1.0]) * 1.05
    body = [_axes(ymax, labels)]
    base = [0.0] * n
    for k, (_, values) in enumerate(series):
        top = [base[i] + values[i] for i in range(n)]
        upper = [_xy(i, n, top[i], ymax) for i in range(n)]
        lower = [_xy(i, n, base[i], ymax) for i in reversed(range(n))]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in upper + lower)
        body.append(
            f'<polygon points="{path}" fill="{PALETTE[k % len(PALETTE)]}" '
            'fill-opacity="0.75" stroke="#fff" stroke-width="0.5"/>'
        )
        base = top
    legend = [(label, PALETTE[k % len(PALETTE)]) for k, (label, _) in enumerate(series)]
    return _frame(name, title, "".join(body), legend[:5])


def bars(
    name: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    target: float | None = None,
) -> str:
    """Grouped bars per label (one bar per series), with an optional target line."""
    if not labels or not series:
        return empty(name, title, "nothing recorded yet")
    n = len(labels)
    peak = max((v for _, values in series for v in values), default=0.0)
    ymax = max(peak, target or 0.0, 1.0) * 1.15
    body = [_axes(ymax, labels)]
    slot = (W - LEFT - RIGHT) / n
    width = slot * 0.8 / len(series)
    for k, (_, values) in enumerate(series):
        for i, v in enumerate(values):
            x = LEFT + slot * i + slot * 0.1 + width * k
            _, y = _xy(i, n, v, ymax)
            _, y0 = _xy(i, n, 0, ymax)
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
                f'height="{max(0.0, y0 - y):.1f}" fill="{PALETTE[k % len(PALETTE)]}">'
                f"<title>{escape(labels[i])}: {v:g}</title></rect>"
            )
    if target is not None:
        _, y = _xy(0, n, target, ymax)
        body.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" '
            'stroke="#dc3912" stroke-dasharray="6,4" stroke-width="1.5"/>'
        )
        body.append(
            f'<text x="{W - RIGHT}" y="{y - 4:.1f}" font-size="10" text-anchor="end" '
            f'fill="#dc3912">target {target:g}</text>'
        )
    legend = [(label, PALETTE[k % len(PALETTE)]) for k, (label, _) in enumerate(series)]
    return _frame(name, title, "".join(body), legend[:5])
