"""A static table view (no script): rows × columns of numbers, each column coloured from worst (red) to best
(green) by its own direction, the best cell of each column marked. Used by the quality results."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence

from .html import View, page

__all__ = ["TableView", "score_table_view"]

_CSS = (
    "<style>.ats-table{border-collapse:collapse;font:13px/1.4 system-ui,sans-serif;margin:8px}"
    ".ats-table th,.ats-table td{border:1px solid #ddd;padding:4px 8px;text-align:right}"
    ".ats-table th{background:#f4f4f4}.ats-table td.ats-row{text-align:left;font-weight:600}"
    ".ats-table td.ats-best{font-weight:700;outline:2px solid #1a7f37}.ats-note{font:12px system-ui;color:#555;margin:8px}"
    "</style>"
)


def _colour(rank: float) -> str:
    """0 = worst (red) .. 1 = best (green), light enough to read."""
    return f"hsl({int(120 * rank)}, 70%, 85%)"


class TableView(View):
    """A View whose document is a plain HTML table."""

    def __init__(self, body: str, *, title: str, token_count: int, height: int) -> None:
        self.kind, self.data, self.title, self.token_count, self.height = "table", {}, title, token_count, height
        self.body_html = _CSS + body  # what a report embeds
        self.html = page(self.body_html, title=title)


# Right-to-left letters and direction controls (as views.js's BIDI).
_BIDI = re.compile("[\u0590-\u08ff\u200e\u200f\u202a-\u202e\u2066-\u2069\ufb1d-\ufdff\ufe70-\ufefe"
                   "\U00010800-\U00010fff\U0001e800-\U0001efff]")


def _isolated(text: object) -> str:
    """Escaped; a name holding right-to-left letters or direction controls goes between first-strong isolate and
    pop directional isolate, so that its direction cannot reorder the rest of the tooltip."""
    text = html.escape(str(text))
    return "\u2068" + text + "\u2069" if _BIDI.search(text) else text


def score_table_view(rows: Sequence[str], columns: Sequence[str], values: Sequence[Sequence[float]], *,
               higher_is_better: Sequence[bool], text: Sequence[Sequence[str]] | None = None,
               title: str = "attnscope · table", note: str = "") -> TableView:
    """``values[r][c]`` shown as ``text[r][c]`` (default 4 significant digits); NaN cells are grey and never best."""
    if len(values) != len(rows) or any(len(v) != len(columns) for v in values):
        raise ValueError(f"values must be [{len(rows)} rows][{len(columns)} columns]")
    if len(higher_is_better) != len(columns):
        raise ValueError(f"higher_is_better has {len(higher_is_better)} entries for {len(columns)} columns")
    head = "".join(f"<th>{html.escape(str(c))} {'&uarr;' if up else '&darr;'}</th>"
                   for c, up in zip(columns, higher_is_better))
    cells = [[""] * len(columns) for _ in rows]
    for c, up in enumerate(higher_is_better):
        col = [(float(values[r][c]), r) for r in range(len(rows)) if math.isfinite(float(values[r][c]))]
        ordered = sorted(col, key=lambda x: x[0], reverse=not up)  # worst first
        for position, (_, r) in enumerate(ordered):
            rank = position / max(1, len(ordered) - 1) if len(ordered) > 1 else 1.0
            best = position == len(ordered) - 1
            shown = text[r][c] if text is not None else f"{values[r][c]:.4g}"
            cells[r][c] = (f"<td class=\"ats-cell{' ats-best' if best else ''}\" data-rank=\"{rank:.3f}\" "
                           f"style=\"background:{_colour(rank)}\" title=\"{_isolated(rows[r])} · "
                           f"{_isolated(columns[c])}\">{html.escape(shown)}{' &#9733;' if best else ''}</td>")
        for r in range(len(rows)):
            if not cells[r][c]:
                cells[r][c] = "<td class=\"ats-cell\" style=\"background:#eee\">n/a</td>"
    body = "".join(f"<tr><td class=\"ats-row\">{html.escape(str(name))}</td>{''.join(cs)}</tr>"
                   for name, cs in zip(rows, cells))
    table = (f"<div class=\"ats-title\">{html.escape(title)}</div><table class=\"ats-table\"><thead><tr><th></th>{head}"
             f"</tr></thead><tbody>{body}</tbody></table>")
    if note:
        table += f"<div class=\"ats-note\">{html.escape(note)}</div>"
    return TableView(table, title=title, token_count=len(rows) * len(columns), height=min(900, 120 + 30 * len(rows)))
