"""Tables as a view: one titled table per block (neighbour lists), text only."""

from __future__ import annotations

from typing import Sequence

from .html import View


def table_view(tables: Sequence[dict], *, title: str = "attnscope · table", token_count: int | None = None) -> View:
    """``tables``: dicts with ``title``, ``columns`` (header strings) and ``rows`` (lists of cell strings)."""
    payload = []
    for t in tables:
        columns = [str(c) for c in t["columns"]]
        rows = [[str(c) for c in row] for row in t["rows"]]
        for row in rows:
            if len(row) != len(columns):
                raise ValueError(f"a row has {len(row)} cells but the table has {len(columns)} columns")
        payload.append({"title": str(t.get("title", "")), "columns": columns, "rows": rows})
    count = sum(len(t["rows"]) for t in payload) if token_count is None else token_count
    height = min(900, 80 + sum(40 + 22 * len(t["rows"]) for t in payload))
    return View("table", {"tables": payload}, token_count=count, title=title, height=height)
