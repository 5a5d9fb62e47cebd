"""Self-contained HTML documents: inline CSS and JS, data embedded as JSON that cannot break out of its tag.

No CDN, no RequireJS, no network: a view is one HTML document. In notebooks it is shown inside an iframe
(``srcdoc``), which runs the same way in JupyterLab, classic Notebook and VS Code.
"""

from __future__ import annotations

import html
import itertools
import json
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

from ..atomic_files import write_text

_ids = itertools.count()


def embed_json(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``</script>``, ``<!--``, U+2028/U+2029 break-out."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (
        text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )


def asset(name: str) -> str:
    """The text of one file of the views' assets (CSS and scripts, inlined into every page)."""
    return resources.files("attnscope.viz").joinpath("assets", name).read_text(encoding="utf-8")


def fragment(kind: str, data: dict, *, token_count: int, title: str) -> str:
    """One view's root element and its data. The root carries ``data-view`` and ``data-token-count``."""
    view_id = f"attnscope-{next(_ids)}"
    return (
        f"<div class=\"attnscope-view\" id=\"{view_id}\" data-view=\"{html.escape(kind)}\" "
        f"data-token-count=\"{int(token_count)}\"><div class=\"ats-title\">{html.escape(title)}</div></div>"
        f"<script type=\"application/json\" id=\"{view_id}-data\">{embed_json(data)}</script>"
    )


def page(body: str, *, title: str) -> str:
    """A complete HTML document around view fragments, with the views' CSS and JS inline (once); the colour scales
    (scales.js) go in the head, so that every script in the body finds them."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{asset('views.css')}</style><script>{asset('scales.js')}</script>"
        f"</head><body>{body}<script>{asset('views.js')}</script></body></html>"
    )


def document(kind: str, data: dict, *, token_count: int, title: str) -> str:
    """A complete HTML document for one view."""
    return page(fragment(kind, data, token_count=token_count, title=title), title=title)


class View:
    """One rendered view: ``.html`` (a full document), ``.save_html(path)``, and notebook display."""

    def __init__(self, kind: str, data: dict, *, token_count: int, title: str, height: int = 480) -> None:
        self.kind = kind
        self.data = data
        self.title = title
        self.token_count = token_count
        self.html = document(kind, data, token_count=token_count, title=title)
        self.height = height

    def save_html(self, path: str | Path) -> Path:
        return write_text(path, self.html)

    def _repr_html_(self) -> str:
        # An iframe keeps the view's CSS and JS to itself and needs no notebook extension.
        return (
            f"<iframe srcdoc=\"{html.escape(self.html, quote=True)}\" style=\"width:100%;height:{self.height}px;"
            "border:1px solid #ddd;border-radius:4px\" sandbox=\"allow-scripts\"></iframe>"
        )

    def __repr__(self) -> str:
        return f"View(kind={self.kind!r}, tokens={self.token_count})"


def in_notebook() -> bool:
    """True inside an IPython kernel or shell (Jupyter, VS Code, IPython), where ``display`` has a front end."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def show(view: View) -> None:
    """Display ``view`` once and return None.

    In a notebook the view is handed to IPython's ``display``; returning None keeps a cell that ends in
    ``res.show()`` from rendering the view a second time as the cell's value. Outside IPython (a script) nothing is
    written or opened: a warning says how to keep the view (``res.view()``, ``res.save_html(path)``).
    """
    if in_notebook():
        from IPython.display import display

        display(view)
        return None
    warnings.warn("show() displays views in a notebook (IPython); in a script use res.save_html(path) to write the "
                  "HTML or res.view() for the View object", stacklevel=3)
    return None
