"""The corpus report: every example of a data set's attributions in one self-contained page, paged (only the shown
page is drawn, so 10,000 examples stay responsive), searchable and sortable by index, prediction, probability and
error. The page's script is its own (assets/corpus.js, using the colour scales of assets/scales.js that every
page carries in its head); a report section embeds it whole."""

from __future__ import annotations

import html
import math
from typing import Sequence

from .html import View, asset, embed_json, page

# Row fields sent to the page, in order (corpus.js reads them by position).
FIELDS = ("index", "text", "label", "prediction", "probability", "correct", "tokens", "scores")


def _round(v: float) -> float:
    """4 significant digits: the page shows no more, and 10,000 examples stay a few MB."""
    return 0.0 if not math.isfinite(v) or v == 0 else float(f"{v:.4g}")


def _row(ex: dict) -> list:
    prob = ex.get("probability")
    correct = ex.get("correct")
    return [int(ex["index"]), str(ex["text"]), None if ex.get("label") is None else str(ex["label"]),
            ex.get("prediction"), None if prob is None else _round(float(prob)),
            None if correct is None or (isinstance(correct, float) and math.isnan(correct)) else bool(correct),
            [str(t) for t in ex["tokens"]], [_round(float(s)) for s in ex["scores"]]]


class CorpusReport(View):
    """A View whose markup carries its own script (``body_html``): reports embed it as it is."""

    def __init__(self, body: str, *, title: str, count: int) -> None:
        self.kind, self.data, self.title, self.token_count, self.height = "corpus", {}, title, count, 720
        self.body_html = body
        self.html = page(body, title=title)


def corpus_report(frame, *, title: str, page_size: int = 50, class_names: Sequence[str] | None = None) -> CorpusReport:
    """``frame``: :meth:`DatasetAttribution.examples_frame` (one row per example)."""
    if not isinstance(page_size, int) or page_size < 1:
        raise ValueError(f"page_size must be a positive int, got {page_size!r}")
    rows = [_row(ex) for ex in frame.to_dict(orient="records")]
    data = {"fields": list(FIELDS), "rows": rows, "page_size": page_size,
            "class_names": None if class_names is None else [str(c) for c in class_names]}
    body = (f"<style>{asset('corpus.css')}</style>"
            f"<div class=\"ats-corpus\" data-rows=\"{len(rows)}\"><div class=\"ats-title\">{html.escape(title)}</div>"
            f"</div><script type=\"application/json\" class=\"ats-corpus-data\">{embed_json(data)}</script>"
            f"<script>{asset('corpus.js')}</script>")
    return CorpusReport(body, title=title, count=len(rows))
