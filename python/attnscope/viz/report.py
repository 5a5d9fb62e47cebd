"""An HTML report: several views in one self-contained page, each under a heading."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence

from ..atomic_files import write_text
from .html import View, fragment, page


def write_report(path: str | Path, sections: Sequence[tuple[str, str, View]], *, title: str = "attnscope report") -> Path:
    """Write ``sections`` — (heading, note, view) — as one page (``path`` is a file or a folder for index.html)."""
    path = Path(path)
    if path.suffix != ".html":
        path = path / "index.html"
    parts = [f"<h1 style=\"font-family:system-ui,sans-serif\">{html.escape(title)}</h1>"]
    for heading, note, view in sections:
        parts.append(
            f"<section class=\"ats-section\" data-section=\"{html.escape(view.kind)}\">"
            f"<h2 style=\"font-family:system-ui,sans-serif\">{html.escape(heading)}</h2>"
            f"<p style=\"font-family:system-ui,sans-serif;color:#555\">{html.escape(note)}</p>"
            # a static view (a table) brings its own markup; the others are rendered by the views' script
            + (getattr(view, "body_html", None) or fragment(view.kind, view.data, token_count=view.token_count,
                                                            title=view.title))
            + "</section>"
        )
    write_text(path, page("\n".join(parts), title=title))
    return path
