"""``save_png`` / ``save_svg`` for every result with a view: the result's matplotlib figure (``.plot()``), saved.

The HTML views are interactive documents; a paper or a slide needs a static image. Each result's ``plot()`` draws
the same data as its view (the same layer/head, example or statistic, chosen by the same arguments), so the export
is ``plot(...)`` saved and closed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..atomic_files import replacing


def save_figure(fig: Any, path: str | Path, fmt: str, dpi: int) -> Path:
    """Write ``fig`` as ``fmt`` ("png" or "svg") and close it (figures left open pile up in scripts)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with replacing(path) as tmp:  # atomically, as every file attnscope writes
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


class FigureExport:
    """Mixin for result classes that have ``plot(...)``: static PNG and SVG exports of their figure."""

    def save_png(self, path: str | Path, *args: Any, dpi: int = 150, **kwargs: Any) -> Path:
        """Write ``self.plot(*args, **kwargs)`` as a PNG (``dpi`` dots per inch); returns the path."""
        return save_figure(self.plot(*args, **kwargs), path, "png", dpi)  # type: ignore[attr-defined]

    def save_svg(self, path: str | Path, *args: Any, **kwargs: Any) -> Path:
        """Write ``self.plot(*args, **kwargs)`` as an SVG (vector; text stays text); returns the path."""
        return save_figure(self.plot(*args, **kwargs), path, "svg", 72)  # type: ignore[attr-defined]
