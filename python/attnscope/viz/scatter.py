"""A labelled 2-D scatter plot (embedding projections); hover shows a point's label and coordinates."""

from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor

from .html import View


def scatter_view(coords: Tensor, labels: Sequence[str], *, x_title: str = "x", y_title: str = "y",
                 title: str = "attnscope · scatter") -> View:
    c = coords.detach().double().cpu()
    if c.dim() != 2 or c.shape[1] != 2 or c.shape[0] != len(labels):
        raise ValueError(f"coords of shape {tuple(c.shape)} does not match {len(labels)} labels (need [n, 2])")
    points = [[x if math.isfinite(x) else 0.0, y if math.isfinite(y) else 0.0] for x, y in c.tolist()]
    data = {"points": points, "labels": [str(s) for s in labels], "x_title": x_title, "y_title": y_title}
    return View("scatter", data, token_count=len(points), title=title, height=620)
