"""SVG primitives drawn in Python: verdict strips, heat strips, line charts, histogram
comparisons and bars. Every chart is an ``<svg class="chart">`` with a viewBox, so the page
scales it; numbers are rounded to keep a day of windows small."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

SEVERITY_COLOURS = {"ok": "#3a9a4a", "warning": "#e8a317", "drift": "#c62828", "n/a": "#c8c8c8"}
SERIES = ("#1f6fb2", "#c62828", "#3a9a4a", "#8e44ad", "#e8a317", "#555555")
WIDTH = 720


def _n(x: float) -> str:
    """A coordinate at one decimal, without a trailing .0."""
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _svg(height: float, body: str, label: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {_n(height)}" role="img" '
            f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">{body}</svg>')


def _runs(values: Sequence[str]) -> list[tuple[int, int, str]]:
    """(start, length, value) of equal neighbours: one rectangle per run, not per cell."""
    out: list[tuple[int, int, str]] = []
    for i, v in enumerate(values):
        if out and out[-1][2] == v:
            start, length, _ = out[-1]
            out[-1] = (start, length + 1, v)
        else:
            out.append((i, 1, v))
    return out


def heat_colour(effect: float | None, warn: float = 0.3, drift: float = 0.5) -> str:
    """A colour for an effect size, quantised to a few steps (equal cells merge)."""
    if effect is None or not math.isfinite(effect):
        return "#eeeeee"
    if effect >= drift:
        return "#c62828"
    if effect >= warn:
        return "#e8a317"
    steps = ("#f4f8f4", "#d5ead7", "#a9d4ae", "#79bd83")
    return steps[min(3, int(effect / warn * 4))]


def strip(rows: Sequence[tuple[str, Sequence[str]]], label: str, axis: tuple[str, str] = ("", ""),
          row_height: float = 14.0) -> str:
    """Rows of coloured cells (each cell a colour; equal neighbours drawn as one rectangle),
    a name at the left of each row, the time axis's ends below."""
    left, right = 150.0, WIDTH - 10.0
    parts = []
    for r, (name, colours) in enumerate(rows):
        y = 4 + r * row_height
        parts.append(f'<text x="{_n(left - 4)}" y="{_n(y + row_height - 4)}" '
                     f'text-anchor="end">{escape(name)}</text>')
        cols = max(1, len(colours))
        cell = (right - left) / cols
        for start, length, colour in _runs(colours):
            parts.append(f'<rect x="{_n(left + start * cell)}" y="{_n(y)}" '
                         f'width="{_n(length * cell + 0.2)}" height="{_n(row_height - 2)}" '
                         f'fill="{colour}"/>')
    bottom = 4 + len(rows) * row_height
    parts.append(f'<text x="{_n(left)}" y="{_n(bottom + 12)}">{escape(axis[0])}</text>')
    parts.append(f'<text x="{_n(right)}" y="{_n(bottom + 12)}" '
                 f'text-anchor="end">{escape(axis[1])}</text>')
    return _svg(bottom + 18, "".join(parts), label)


def lines(series: Sequence[tuple[str, Sequence[float | None]]], label: str, unit: str = "",
          axis: tuple[str, str] = ("", ""), height: float = 150.0) -> str:
    """Line chart of series sharing an x axis (None: a gap), y from 0 to the largest value,
    a legend above."""
    left, right, top, bottom = 50.0, WIDTH - 10.0, 22.0, height - 18.0
    finite = [v for _, values in series for v in values if v is not None and math.isfinite(v)]
    top_value = max(finite) if finite else 1.0
    top_value = top_value if top_value > 0 else 1.0
    parts = [f'<line x1="{_n(left)}" y1="{_n(bottom)}" x2="{_n(right)}" y2="{_n(bottom)}" '
             'stroke="#999"/>',
             f'<text x="{_n(left - 4)}" y="{_n(top + 4)}" text-anchor="end">'
             f'{top_value:.3g}{escape(unit)}</text>',
             f'<text x="{_n(left - 4)}" y="{_n(bottom)}" text-anchor="end">0</text>',
             f'<text x="{_n(left)}" y="{_n(height - 4)}">{escape(axis[0])}</text>',
             f'<text x="{_n(right)}" y="{_n(height - 4)}" text-anchor="end">'
             f'{escape(axis[1])}</text>']
    for k, (name, values) in enumerate(series):
        colour = SERIES[k % len(SERIES)]
        parts.append(f'<rect x="{_n(left + k * 120)}" y="4" width="10" height="10" '
                     f'fill="{colour}"/><text x="{_n(left + k * 120 + 14)}" y="13">'
                     f'{escape(name)}</text>')
        step = (right - left) / max(1, len(values) - 1)
        run: list[str] = []
        for i, v in enumerate([*values, None]):
            if v is not None and math.isfinite(v):
                y = bottom - (bottom - top) * v / top_value
                run.append(f"{_n(left + i * step)},{_n(y)}")
                continue
            if len(run) == 1:
                x, y_text = run[0].split(",")
                parts.append(f'<circle cx="{x}" cy="{y_text}" r="1.5" fill="{colour}"/>')
            elif run:
                parts.append(f'<polyline points="{" ".join(run)}" fill="none" '
                             f'stroke="{colour}" stroke-width="1.4"/>')
            run = []
    return _svg(height, "".join(parts), label)


def histograms(reference: Sequence[float], window: Sequence[float], edges: Sequence[float],
               label: str, height: float = 160.0) -> str:
    """The reference's histogram (grey bars) against the window's (red step line), both as
    shares of their totals, on the reference's bins (first and last: under- and overflow)."""
    left, right, top, bottom = 50.0, WIDTH - 10.0, 22.0, height - 18.0
    ref_total, win_total = sum(reference) or 1.0, sum(window) or 1.0
    ref = [c / ref_total for c in reference]
    win = [c / win_total for c in window]
    peak = max([*ref, *win, 1e-9])
    bins = max(1, len(ref))
    width = (right - left) / bins

    def y(v: float) -> float:
        return bottom - (bottom - top) * v / peak

    parts = [f'<rect x="{_n(left)}" y="4" width="10" height="10" fill="#b0b0b0"/>'
             f'<text x="{_n(left + 14)}" y="13">reference</text>'
             f'<rect x="{_n(left + 100)}" y="4" width="10" height="10" fill="#c62828"/>'
             f'<text x="{_n(left + 114)}" y="13">drifted windows</text>',
             f'<text x="{_n(left - 4)}" y="{_n(top + 4)}" text-anchor="end">'
             f'{peak:.0%}</text>',
             f'<line x1="{_n(left)}" y1="{_n(bottom)}" x2="{_n(right)}" y2="{_n(bottom)}" '
             'stroke="#999"/>']
    for i, v in enumerate(ref):
        if v > 0:
            parts.append(f'<rect x="{_n(left + i * width + 1)}" y="{_n(y(v))}" '
                         f'width="{_n(max(width - 2, 0.5))}" height="{_n(bottom - y(v))}" '
                         'fill="#b0b0b0"/>')
    step = [f"{_n(left)},{_n(bottom)}"]
    for i, v in enumerate(win):
        step += [f"{_n(left + i * width)},{_n(y(v))}", f"{_n(left + (i + 1) * width)},{_n(y(v))}"]
    step.append(f"{_n(right)},{_n(bottom)}")
    parts.append(f'<polyline points="{" ".join(step)}" fill="none" stroke="#c62828" '
                 'stroke-width="1.6"/>')
    if edges:
        parts.append(f'<text x="{_n(left + width)}" y="{_n(height - 4)}">{edges[0]:.4g}</text>'
                     f'<text x="{_n(right - width)}" y="{_n(height - 4)}" text-anchor="end">'
                     f'{edges[-1]:.4g}</text>')
    return _svg(height, "".join(parts), label)


def bars(items: Sequence[tuple[str, float, str]], label: str, unit: str = "",
         bar_height: float = 16.0) -> str:
    """Horizontal bars: (name, value, colour), scaled to the largest value."""
    left, right = 150.0, WIDTH - 60.0
    peak = max([v for _, v, _ in items] + [1e-9])
    parts = []
    for r, (name, value, colour) in enumerate(items):
        y = 4 + r * bar_height
        w = (right - left) * value / peak
        parts.append(f'<text x="{_n(left - 4)}" y="{_n(y + bar_height - 5)}" '
                     f'text-anchor="end">{escape(name)}</text>'
                     f'<rect x="{_n(left)}" y="{_n(y)}" width="{_n(max(w, 1.0))}" '
                     f'height="{_n(bar_height - 3)}" fill="{colour}"/>'
                     f'<text x="{_n(left + max(w, 1.0) + 4)}" y="{_n(y + bar_height - 5)}">'
                     f'{value:.3g}{escape(unit)}</text>')
    return _svg(8 + len(items) * bar_height, "".join(parts), label)
