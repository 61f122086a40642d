"""Small, dependency-free SVG charts for the HTML report.

Every chart is one self-contained ``<svg>`` element (no scripts, no fonts or
files fetched at view time), with a ``<title>`` for accessibility and a
``data-chart`` attribute that tests use to find it. A chart with nothing to
plot is one line of HTML (:func:`empty`), not an empty frame.

Text is laid out here, not by the browser: :func:`text_width` estimates a
string's width from the advance widths of the widest common sans-serif faces
(DejaVu Sans and Liberation Sans, which has Arial's metrics), so text wrapped
by :func:`wrap` or shortened by :func:`fit` stays inside its box whichever of
them the viewer's browser picks. Axes use :func:`nice_ticks` (steps of 1, 2,
2.5 or 5 x 10^k) and :func:`number` (thousands separators, no exponents).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

from spe_core.errors import InvalidValue

if TYPE_CHECKING:
    from spe_core.flow import FlowReport, ProcessMap

__all__ = [
    "PALETTE",
    "bars",
    "empty",
    "fever",
    "fit",
    "nice_ticks",
    "number",
    "process_map",
    "stacked_area",
    "text_width",
    "wrap",
]

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
W = 760
"""Every chart's width in px: it fits the report's column at a 1000 px window."""
RIGHT, TOP = 16, 30
PLOT_H = 200
FONT = "sans-serif"
ZONES = (("red zone", "#f4b8b8"), ("yellow zone", "#f7e49a"), ("green zone", "#bfe5bf"))

# Advance widths (1/1000 em) of ASCII 32..126, the larger of DejaVu Sans and
# Liberation Sans for each character, as Chromium measures them.
_NORMAL = (
    318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337, 636, 636, 636,
    636, 636, 636, 636, 636, 636, 636, 337, 337, 838, 838, 838, 556, 1015, 684, 686, 722, 770, 667,
    611, 778, 752, 295, 500, 667, 557, 863, 748, 787, 667, 787, 722, 667, 611, 732, 684, 989, 685,
    667, 685, 390, 337, 390, 838, 556, 500, 613, 635, 550, 635, 615, 352, 635, 634, 278, 278, 579,
    278, 974, 634, 612, 635, 635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636, 337, 636, 838,
)  # fmt: skip
_BOLD = (
    348, 456, 521, 838, 696, 1002, 872, 306, 457, 457, 523, 838, 380, 415, 380, 365, 696, 696, 696,
    696, 696, 696, 696, 696, 696, 696, 400, 400, 838, 838, 838, 611, 1000, 774, 762, 734, 830, 683,
    683, 821, 837, 372, 556, 775, 637, 995, 837, 850, 733, 850, 770, 720, 682, 812, 774, 1103, 771,
    724, 725, 457, 365, 457, 838, 556, 500, 675, 716, 593, 716, 678, 435, 716, 712, 343, 343, 665,
    343, 1042, 712, 687, 716, 716, 493, 595, 478, 712, 652, 924, 645, 652, 582, 712, 365, 712, 838,
)  # fmt: skip


# --- text ---------------------------------------------------------------------------------


def _char_width(char: str, table: Sequence[int]) -> int:
    code = ord(char)
    if 32 <= code < 127:
        return table[code - 32]
    base = unicodedata.normalize("NFD", char)[:1]  # é -> e, ü -> u
    if base and 32 <= ord(base) < 127:
        return table[ord(base) - 32] + 20
    if unicodedata.combining(char):
        return 0
    return 1000  # wide or unknown: a full em


def text_width(text: str, size: float, bold: bool = False) -> float:
    """The width in px of ``text`` at ``size`` px, a safe (wide) estimate."""
    table = _BOLD if bold else _NORMAL
    return sum(_char_width(c, table) for c in text) * size / 1000


def fit(text: str, width: float, size: float, bold: bool = False) -> str:
    """``text``, shortened with an ellipsis to fit ``width`` px (unchanged if it fits)."""
    if text_width(text, size, bold) <= width:
        return text
    while text and text_width(text + "…", size, bold) > width:
        text = text[:-1]
    return text.rstrip() + "…" if text else ""


def wrap(text: str, width: float, size: float, bold: bool = False) -> list[str]:
    """``text`` in lines of at most ``width`` px, broken between words only; a single
    word wider than a line is shortened with an ellipsis (never split)."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):  # a no-break space (as in "25\u00a0min") holds
        if not word:
            continue
        candidate = f"{line} {word}" if line else word
        if text_width(candidate, size, bold) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = fit(word, width, size, bold)
    if line:
        lines.append(line)
    return lines


# --- numbers ------------------------------------------------------------------------------


def nice_ticks(top: float, count: int = 5, integer: bool = False) -> list[float]:
    """Axis ticks from 0 to at least ``top`` (0: up to 1; else at least 10^-6): about
    ``count`` steps of 1, 2, 2.5 or 5 x 10^k (whole steps only with ``integer``)."""
    if not math.isfinite(top) or top < 0 or count < 1:
        raise InvalidValue(
            f"cannot draw an axis up to {top!r} in {count!r} steps.",
            "give a finite value of 0 or more and at least one step.",
        )
    top = max(top, 1e-6) if top else 1.0
    raw = top / count
    exponent = math.floor(math.log10(raw))
    step = 10.0 ** (exponent + 1)
    for mantissa in (1.0, 2.0, 2.5, 5.0, 10.0):
        candidate = mantissa * 10.0**exponent
        if candidate >= raw * (1 - 1e-9) and not (integer and candidate % 1):
            step = candidate
            break
    if integer:
        step = max(step, 1.0)
    steps = math.ceil(top / step - 1e-9)
    decimals = _decimals(step)
    return [round(k * step, decimals) for k in range(steps + 1)]


def _decimals(step: float) -> int:
    """How many decimals the ticks of ``step`` need (2.5 -> 1, 0.25 -> 2, 50 -> 0)."""
    for decimals in range(10):
        if abs(round(step, decimals) - step) < 1e-9 * max(1.0, step):
            return decimals
    return 10


def number(value: float, step: float | None = None) -> str:
    """``value`` for a reader: thousands separators, never an exponent; as many
    decimals as ``step`` needs (a tick), else none from 100 up, one below."""
    if step is not None:
        decimals = _decimals(step)
    elif float(value).is_integer() or abs(value) >= 100:
        decimals = 0
    else:
        decimals = 1 if abs(value) >= 1 else 2
    return f"{value:,.{decimals}f}"


# --- frames -------------------------------------------------------------------------------


def _svg(name: str, title: str, height: float, body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" data-chart="{escape(name)}" role="img" '
        f'viewBox="0 0 {W} {height:.0f}" width="{W}" height="{height:.0f}" '
        f'style="max-width:100%;height:auto" font-family="{FONT}">'
        f"<title>{escape(title)}</title>"
        f'<rect width="{W}" height="{height:.0f}" fill="#ffffff"/>{body}</svg>'
    )


def _legend(items: Sequence[tuple[str, str]], left: float, y: float) -> tuple[str, float]:
    """Legend items laid out left to right, wrapping into rows: (SVG, height used)."""
    out: list[str] = []
    x, row = left, 0
    for label, colour in items:
        label = fit(label, W - left - RIGHT - 16, 11)
        width = 14 + text_width(label, 11) + 18
        if x > left and x + width > W - RIGHT:
            x, row = left, row + 1
        top = y + row * 18
        out.append(
            f'<rect x="{x:.1f}" y="{top:.1f}" width="10" height="10" fill="{colour}" '
            'stroke="#888" stroke-width="0.5"/>'
            f'<text x="{x + 14:.1f}" y="{top + 9:.1f}" font-size="11">{escape(label)}</text>'
        )
        x += width
    return "".join(out), (row + 1) * 18 if items else 0


def _frame(
    name: str,
    title: str,
    body: str,
    height: float,
    legend: Sequence[tuple[str, str]] = (),
    left: float = 16,
) -> str:
    """The chart's title, its body (drawn down to ``height``) and its legend below."""
    items, used = _legend(legend, left, height + 6)
    heading = (
        f'<text x="{left}" y="18" font-size="14" font-weight="bold">'
        f"{escape(fit(title, W - left - RIGHT, 14, bold=True))}</text>"
    )
    return _svg(name, title, height + used + (10 if used else 4), heading + body + items)


def _value_axis(ticks: Sequence[float]) -> float:
    """The left margin the y tick labels need."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    return max(40.0, max(text_width(number(t, step), 10) for t in ticks) + 14)


def _axes(ticks: Sequence[float], labels: Sequence[str], left: float) -> str:
    """Y ticks and grid lines, the axes, and as many x labels as fit without overlap."""
    plot_w = W - left - RIGHT
    ymax = ticks[-1]
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    out = []
    for value in ticks:
        y = TOP + PLOT_H - PLOT_H * value / ymax
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{number(value, step)}</text>"
        )
    out.append(
        f'<line x1="{left}" y1="{TOP + PLOT_H}" x2="{W - RIGHT}" y2="{TOP + PLOT_H}" '
        'stroke="#333"/>'
        f'<line x1="{left}" y1="{TOP}" x2="{left}" y2="{TOP + PLOT_H}" stroke="#333"/>'
    )
    n = max(1, len(labels))
    slot = plot_w / n
    widest = max((text_width(label, 10) for label in labels), default=0.0) + 10
    every = max(1, math.ceil(widest / slot))
    for i, label in enumerate(labels):
        if i % every:
            continue
        x = left + slot * (i + 0.5)
        if x - widest / 2 < 0 or x + widest / 2 > W:
            continue
        out.append(
            f'<text x="{x:.1f}" y="{TOP + PLOT_H + 14}" font-size="10" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    return "".join(out)


def _xy(i: int, n: int, value: float, ymax: float, left: float) -> tuple[float, float]:
    plot_w = W - left - RIGHT
    x = left + plot_w * (i + 0.5) / max(1, n)
    y = TOP + PLOT_H - PLOT_H * (value / ymax if ymax else 0)
    return x, y


# --- charts -------------------------------------------------------------------------------


def empty(name: str, title: str, message: str) -> str:
    """A panel with nothing to plot: one line of HTML saying why."""
    return (
        f'<p class="empty" data-chart="{escape(name)}"><b>{escape(title)}:</b> '
        f"{escape(message)}</p>"
    )


def fever(
    name: str,
    title: str,
    labels: Sequence[str],
    level: Sequence[float],
    target: Sequence[float],
    red_below: float,
    green_above: float,
) -> str:
    """Buffer level against its target, over red / yellow / green zone bands."""
    if not labels:
        return empty(name, title, "no queue activity recorded yet")
    ticks = nice_ticks(max([*level, *(t * 1.2 for t in target), 1.0]), integer=True)
    ymax = ticks[-1]
    left = _value_axis(ticks)
    n = len(labels)
    half = (W - left - RIGHT) / max(1, n) / 2
    body = []
    for i, t in enumerate(target):
        x0, _ = _xy(i, n, 0, ymax, left)
        for lo, hi, (_, colour) in zip(
            (0, red_below, green_above), (red_below, green_above, 1.2), ZONES, strict=True
        ):
            _, y_hi = _xy(i, n, min(hi * t, ymax), ymax, left)
            _, y_lo = _xy(i, n, lo * t, ymax, left)
            body.append(
                f'<rect x="{x0 - half:.1f}" y="{y_hi:.1f}" width="{2 * half:.1f}" '
                f'height="{max(0.0, y_lo - y_hi):.1f}" fill="{colour}"/>'
            )
    body.append(_axes(ticks, labels, left))
    points = " ".join(
        f"{x:.1f},{y:.1f}" for x, y in (_xy(i, n, v, ymax, left) for i, v in enumerate(level))
    )
    target_points = " ".join(
        f"{x:.1f},{y:.1f}" for x, y in (_xy(i, n, v, ymax, left) for i, v in enumerate(target))
    )
    body.append(
        f'<polyline points="{target_points}" fill="none" stroke="#555" '
        'stroke-dasharray="5,4" stroke-width="1.5"/>'
    )
    body.append(
        f'<polyline points="{points}" fill="none" stroke="{PALETTE[0]}" stroke-width="2.5"/>'
    )
    for i, v in enumerate(level):
        x, y = _xy(i, n, v, ymax, left)
        body.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{PALETTE[0]}">'
            f"<title>{escape(labels[i])}: {number(v)} queued, target {number(target[i])}</title>"
            "</circle>"
        )
    legend = [("queue level", PALETTE[0]), ("target", "#555"), *ZONES]
    return _frame(name, title, "".join(body), TOP + PLOT_H + 22, legend, left)


def stacked_area(
    name: str, title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]
) -> str:
    """Cumulative flow: one band per series, stacked bottom to top."""
    if not labels or not series:
        return empty(name, title, "no flow recorded yet")
    n = len(labels)
    totals = [sum(s[1][i] for s in series) for i in range(n)]
    ticks = nice_ticks(max([*totals, 1.0]), integer=True)
    ymax = ticks[-1]
    left = _value_axis(ticks)
    body = [_axes(ticks, labels, left)]
    base = [0.0] * n
    for k, (_, values) in enumerate(series):
        top = [base[i] + values[i] for i in range(n)]
        upper = [_xy(i, n, top[i], ymax, left) for i in range(n)]
        lower = [_xy(i, n, base[i], ymax, left) for i in reversed(range(n))]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in upper + lower)
        body.append(
            f'<polygon points="{path}" fill="{PALETTE[k % len(PALETTE)]}" '
            'fill-opacity="0.75" stroke="#fff" stroke-width="0.5"/>'
        )
        base = top
    legend = [(label, PALETTE[k % len(PALETTE)]) for k, (label, _) in enumerate(series)]
    return _frame(name, title, "".join(body), TOP + PLOT_H + 22, legend, left)


def bars(
    name: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    target: float | None = None,
    integer: bool = False,
) -> str:
    """Horizontal bars, one row per label (one bar per series), names on the left,
    each bar's value at its end, with an optional target line (``integer``: counts,
    so whole-number ticks)."""
    if not labels or not series:
        return empty(name, title, "nothing recorded yet")
    label_w = min(220.0, max(text_width(label, 11) for label in labels))
    left = 16 + label_w + 8
    value_w = 8 + max(text_width(number(v), 10) for _, values in series for v in values)
    plot_w = W - left - RIGHT - value_w
    peak = max((v for _, values in series for v in values), default=0.0)
    ticks = nice_ticks(max(peak, target or 0.0), integer=integer)
    xmax = ticks[-1]
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    bar_h = 16
    row_h = bar_h * len(series) + 8
    top = TOP + (14 if target is not None else 0)
    plot_h = row_h * len(labels)
    bottom = top + plot_h

    def x_of(value: float) -> float:
        return left + plot_w * value / xmax

    body = []
    for value in ticks:
        x = x_of(value)
        body.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#eee"/>'
            f'<text x="{x:.1f}" y="{bottom + 14}" font-size="10" text-anchor="middle">'
            f"{number(value, step)}</text>"
        )
    body.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#333"/>')
    for i, label in enumerate(labels):
        y = top + row_h * i + 4
        shown = fit(label, label_w, 11)
        full = f"<title>{escape(label)}</title>" if shown != label else ""
        body.append(
            f'<text x="{left - 8}" y="{y + bar_h * len(series) / 2 + 3:.1f}" font-size="11" '
            'text-anchor="end">'
            f"{full}{escape(shown)}</text>"
        )
        for k, (_, values) in enumerate(series):
            v = values[i]
            yk = y + bar_h * k
            body.append(
                f'<rect x="{left}" y="{yk:.1f}" width="{max(0.0, x_of(v) - left):.1f}" '
                f'height="{bar_h - 2}" fill="{PALETTE[k % len(PALETTE)]}">'
                f"<title>{escape(label)}: {number(v)}</title></rect>"
                f'<text x="{x_of(v) + 4:.1f}" y="{yk + bar_h - 5:.1f}" font-size="10">'
                f"{number(v)}</text>"
            )
    if target is not None:
        x = x_of(target)
        body.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{bottom}" '
            'stroke="#dc3912" stroke-dasharray="6,4" stroke-width="1.5"/>'
            f'<text x="{x:.1f}" y="{top - 6}" font-size="10" text-anchor="middle" '
            f'fill="#dc3912">target {number(target)}</text>'
        )
    legend = (
        [(label, PALETTE[k % len(PALETTE)]) for k, (label, _) in enumerate(series)]
        if len(series) > 1
        else []
    )
    return _frame(name, title, "".join(body), bottom + 20, legend)


def process_map(pmap: ProcessMap, report: FlowReport | None = None) -> str:
    """The process map as one box per phase, left to right (four to a row), joined by
    arrows: each box shows the phase's name, goal, owner, CRM stages and (given a
    report) its current figures, wrapped between words to fit the box.
    ``data-chart="process-map"``."""
    per_row = min(4, len(pmap.phases))
    gap, pad, line_gap = 28.0, 9.0, 5.0
    box_w = (W - gap * (per_row + 1)) / per_row
    inner = box_w - 2 * pad
    boxes: list[list[tuple[str, float, bool, str]]] = []
    for phase in pmap.phases:
        texts = [
            (phase.name.replace("_", " ").capitalize(), 13.0, True, "#222"),
            (phase.goal, 10.0, False, "#222"),
            (f"owner: {phase.owner.value.replace('_', ' ')}", 10.0, False, "#555"),
        ]
        if phase.stages:
            texts.append(("CRM stages:", 9.0, False, "#555"))
            texts += [(f"\u2022 {stage}", 9.0, False, "#555") for stage in phase.stages]
        figures = [] if report is None else report.figure_lines(phase.name)
        texts += [(line, 10.0, False, "#1a4a99") for line in figures]
        boxes.append(
            [
                (line, size, bold, colour)
                for text, size, bold, colour in texts
                for line in wrap(text, inner, size, bold)
            ]
        )

    def height(rows: list[tuple[str, float, bool, str]]) -> float:
        return 2 * pad + sum(size + line_gap for _, size, _, _ in rows)

    row_heights = [
        max(height(r) for r in boxes[i : i + per_row]) for i in range(0, len(boxes), per_row)
    ]
    parts = [
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="6" '
        'refY="3" orient="auto"><path d="M0,0 L6,3 L0,6 z" fill="#333"/></marker></defs>',
        f'<text x="{gap}" y="18" font-size="14" font-weight="bold">Process map</text>',
    ]
    y0 = 30.0
    for r, row_h in enumerate(row_heights):
        for c, rows in enumerate(boxes[r * per_row : (r + 1) * per_row]):
            i = r * per_row + c
            x = gap + c * (box_w + gap)
            phase = pmap.phases[i]
            parts.append(
                f'<g data-box="{escape(phase.name)}"><title>{escape(phase.goal)}</title>'
                f'<rect x="{x:.1f}" y="{y0:.1f}" width="{box_w:.1f}" height="{row_h:.1f}" '
                'rx="10" fill="#eef3fb" stroke="#3366cc"/>'
            )
            y = y0 + pad  # the top of the next line: its baseline sits at y + size + 1.5
            for text, size, bold, colour in rows:
                weight = ' font-weight="bold"' if bold else ""
                parts.append(
                    f'<text x="{x + pad:.1f}" y="{y + size + 1.5:.1f}" '
                    f'font-size="{size}" fill="{colour}"{weight}>{escape(text)}</text>'
                )
                y += size + line_gap
            parts.append("</g>")
            if c:
                mid = y0 + row_h / 2
                parts.append(
                    f'<path d="M{x - gap + 3:.1f},{mid:.1f} L{x - 4:.1f},{mid:.1f}" '
                    'stroke="#333" marker-end="url(#arrow)"/>'
                )
            elif r:
                top_prev = y0 - gap
                last_x = gap + (per_row - 1) * (box_w + gap) + box_w / 2
                parts.append(
                    f'<path d="M{last_x:.1f},{top_prev + 2:.1f} L{last_x:.1f},'
                    f"{top_prev + gap / 2:.1f} L{x + box_w / 2:.1f},{top_prev + gap / 2:.1f} "
                    f'L{x + box_w / 2:.1f},{y0 - 4:.1f}" fill="none" stroke="#333" '
                    'marker-end="url(#arrow)"/>'
                )
        y0 += row_h + gap
    height_total = y0 - gap + 10
    return _svg("process-map", "Process map", height_total, "".join(parts))
