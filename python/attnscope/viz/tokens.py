"""Token attribution view: tokens coloured on a symmetric diverging scale, with a word/token toggle."""

from __future__ import annotations

import math
from typing import Sequence

from .html import View
from .readable import readable_tokens


def _clean(scores: Sequence[float]) -> list[float]:
    return [float(s) if math.isfinite(float(s)) else 0.0 for s in scores]


def token_view(examples: Sequence[dict], *, title: str = "attnscope · attribution") -> View:
    """``examples``: dicts with ``tokens``, ``scores`` and optionally ``words``/``word_scores`` and ``label``.

    Max |score| over all examples is full colour; positive red, negative blue, zero white; values on hover.
    Pieces are shown as text (``Ġcat`` as `` cat``; see :mod:`attnscope.viz.readable`).
    """
    payload, max_abs, count = [], 0.0, 0
    for ex in examples:
        scores = _clean(ex["scores"])
        if len(scores) != len(ex["tokens"]):
            raise ValueError(f"tokens and scores differ in length: {len(ex['tokens'])} tokens, {len(scores)} scores")
        max_abs = max([max_abs, *map(abs, scores)])
        count += len(scores)
        item = {"label": str(ex.get("label", "")), "token": {"tokens": readable_tokens(ex["tokens"]), "scores": scores}}
        if ex.get("words") is not None:
            item["word"] = {"tokens": readable_tokens(ex["words"], like=ex["tokens"]),
                            "scores": _clean(ex["word_scores"])}
        payload.append(item)
    height = min(900, 110 + 40 * len(payload) + count // 3)
    return View("tokens", {"examples": payload, "max_abs": max_abs}, token_count=count, title=title, height=height)
