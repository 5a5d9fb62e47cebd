"""Static figures for the global views: an SVG summary plot (shap's, for tokens), SVG bars with error bars, and
pandas tables as HTML. No script: a report embeds them as they are."""

from __future__ import annotations

import html
import math
import random
from typing import Sequence

import pandas as pd

from .score_table import TableView

__all__ = ["bars_svg", "frame_html", "static_view", "summary_svg"]

_CSS = ("<style>.ats-fig{font:12px system-ui,sans-serif;margin:8px}.ats-fig text{font:11px system-ui,sans-serif}"
        ".ats-caption{font:12px system-ui,sans-serif;color:#555;margin:4px 8px}</style>")
_POS, _NEG = "#dc2828", "#2a5ae6"


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _axis(x0: float, x1: float, left: int, width: int, top: int, height: int) -> tuple[str, callable]:
    """A zero line and three ticks; returns the markup and the value -> x mapping."""
    lo, hi = min(x0, 0.0), max(x1, 0.0)
    span = (hi - lo) or 1.0
    sx = lambda v: left + (v - lo) / span * width  # noqa: E731
    parts = [f"<line x1=\"{sx(0):.1f}\" x2=\"{sx(0):.1f}\" y1=\"{top}\" y2=\"{top + height}\" stroke=\"#999\"/>"]
    for v in (lo, 0.0, hi):
        parts.append(f"<text x=\"{sx(v):.1f}\" y=\"{top + height + 14}\" text-anchor=\"middle\">{_num(v)}</text>")
    return "".join(parts), sx


def _svg(cls: str, parts: list[str], right: float, bottom: float, x_title: str) -> str:
    """The figure's ``parts`` in an SVG element, with the x axis title centred under the plot area."""
    height = bottom + 34
    centre = (160 + right) / 2  # the plot area starts at 160 (row labels to its left)
    title = f"<text x=\"{centre}\" y=\"{height - 4}\" text-anchor=\"middle\">{_esc(x_title)}</text>"
    return (f"<svg class=\"ats-fig {cls}\" width=\"{right + 20}\" height=\"{height}\" "
            f"xmlns=\"http://www.w3.org/2000/svg\">{''.join(parts)}{title}</svg>")


def summary_svg(features: Sequence[str], values: Sequence[Sequence[float]], *, max_points: int = 300,
                x_title: str = "attribution") -> str:
    """One row per feature (top first): each occurrence's score as a dot (jittered vertically, at most ``max_points``
    a row, sampled with a fixed seed), red for positive, blue for negative; a bar marks the mean."""
    rng = random.Random(0)
    row_h, left, width, top = 22, 160, 520, 10
    flat = [v for vs in values for v in vs] or [0.0]
    axis, sx = _axis(min(flat), max(flat), left, width, top, row_h * len(features))
    parts = [axis]
    for r, (feat, vs) in enumerate(zip(features, values)):
        y = top + r * row_h + row_h / 2
        shown = list(vs) if len(vs) <= max_points else rng.sample(list(vs), max_points)
        parts.append(f"<text x=\"{left - 6}\" y=\"{y + 4:.1f}\" text-anchor=\"end\">{_esc(feat)}</text>")
        for v in shown:
            jitter = (rng.random() - 0.5) * (row_h - 8)
            parts.append(f"<circle cx=\"{sx(v):.1f}\" cy=\"{y + jitter:.1f}\" r=\"2.2\" fill=\"{_POS if v >= 0 else _NEG}\""
                         f" fill-opacity=\"0.55\"><title>{_esc(feat)}: {_num(float(v))}</title></circle>")
        mean = sum(vs) / len(vs) if vs else 0.0
        parts.append(f"<line class=\"ats-mean\" x1=\"{sx(mean):.1f}\" x2=\"{sx(mean):.1f}\" y1=\"{y - 8:.1f}\" "
                     f"y2=\"{y + 8:.1f}\" stroke=\"#000\" stroke-width=\"2\"/>")
    return _svg("ats-summary", parts, left + width, top + row_h * len(features), x_title)


def bars_svg(labels: Sequence[str], values: Sequence[float], *, lows: Sequence[float] | None = None,
             highs: Sequence[float] | None = None, x_title: str = "") -> str:
    """Horizontal bars from zero (red positive, blue negative) with optional error bars [low, high]."""
    row_h, left, width, top = 20, 160, 420, 10
    ends = [float(v) for v in values] + [float(v) for v in (lows or []) if math.isfinite(v)] + \
           [float(v) for v in (highs or []) if math.isfinite(v)]
    axis, sx = _axis(min(ends or [0.0]), max(ends or [0.0]), left, width, top, row_h * len(labels))
    parts = [axis]
    for r, (name, v) in enumerate(zip(labels, values)):
        y = top + r * row_h
        x0, x1 = sorted((sx(0.0), sx(float(v))))
        parts.append(f"<text x=\"{left - 6}\" y=\"{y + 14}\" text-anchor=\"end\">{_esc(name)}</text>"
                     f"<rect x=\"{x0:.1f}\" y=\"{y + 4}\" width=\"{max(x1 - x0, 0.5):.1f}\" height=\"{row_h - 8}\" "
                     f"fill=\"{_POS if v >= 0 else _NEG}\"><title>{_esc(name)}: {_num(float(v))}</title></rect>")
        if lows is not None and highs is not None and math.isfinite(lows[r]) and math.isfinite(highs[r]):
            parts.append(f"<line x1=\"{sx(lows[r]):.1f}\" x2=\"{sx(highs[r]):.1f}\" y1=\"{y + row_h / 2}\" "
                         f"y2=\"{y + row_h / 2}\" stroke=\"#222\"/>")
    return _svg("ats-bars-svg", parts, left + width, top + row_h * len(labels), x_title)


def frame_html(frame: pd.DataFrame, *, index: bool = True, caption: str = "") -> str:
    """A pandas table as an escaped HTML table (numbers to 4 significant digits)."""
    cols = ([frame.index.name or ""] if index else []) + [str(c) for c in frame.columns]
    head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
    body = []
    for key, row in frame.iterrows():
        cells = ([key] if index else []) + list(row)
        body.append("<tr>" + "".join(f"<td>{_esc(_num(c))}</td>" for c in cells) + "</tr>")
    cap = f"<div class=\"ats-caption\">{_esc(caption)}</div>" if caption else ""
    return f"{cap}<table class=\"ats-table\"><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def static_view(parts: Sequence[str], *, title: str, count: int, height: int = 600) -> TableView:
    """A view made of static markup (figures and tables) under a title."""
    body = f"{_CSS}<div class=\"ats-title\">{_esc(title)}</div>" + "".join(parts)
    return TableView(body, title=title, token_count=count, height=height)
