"""What every patching sweep shares: checked sites, layers, metric and input pairs, the empty grids, the result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..adapters.sites import num_heads
from ..results.patching import PatchingResult
from .metrics import Metric, resolve_metric
from .outcome import patching_result
from .pairs import Pair, check_sites, paired_inputs, sweep_layers

__all__ = ["Sweep"]

_COLUMN_TITLE = {"position": "position", "head": "head", "layer": "positions"}


@dataclass
class Sweep:
    """A layer x (position | head | whole layer) sweep of ``sites`` over pairs of clean and corrupted examples."""

    model: nn.Module
    sites: list[str]
    by: str
    layers: list[int]
    metric: Metric
    pairs: list[Pair]
    tokenizer: Any
    raw: dict[str, Tensor] = field(default_factory=dict)  # [batch, layer, column] float64, NaN = not run
    clean_values: list[float] = field(default_factory=list)
    corrupted_values: list[float] = field(default_factory=list)
    described: str = ""  # the metric as bound to the first example

    @classmethod
    def plan(cls, model: nn.Module, clean: Any, corrupted: Any, *, metric: Any, sites: Sequence[str] | str, by: str,
             layers: Sequence[int] | int | None, tokenizer: Any) -> Sweep:
        slist = check_sites(sites, by)
        sweep = cls(model, slist, by, sweep_layers(model, layers), resolve_metric(metric),
                    paired_inputs(model, clean, corrupted, tokenizer), tokenizer)
        sweep.raw = {s: torch.full((len(sweep.pairs), len(sweep.layers), sweep.width), float("nan"),
                                   dtype=torch.float64) for s in slist}
        return sweep

    @property
    def heads(self) -> int:
        return num_heads(self.model)

    @property
    def width(self) -> int:
        if self.by == "position":
            return max(p.n for p in self.pairs)
        return self.heads if self.by == "head" else 1

    def items(self, n: int) -> list[int]:
        """The columns of one example of ``n`` tokens: positions, heads, or the single whole-layer patch."""
        return list(range(n)) if self.by == "position" else list(range(self.heads)) if self.by == "head" else [0]

    @property
    def keys(self) -> list[tuple[str, int]]:
        return [(s, l) for s in self.sites for l in self.layers]

    def add_example(self, bound: Metric, clean: float, corrupted: float) -> None:
        """Record one example's bound metric and its clean and corrupted values."""
        self.described = self.described or bound.describe()
        self.clean_values.append(clean)
        self.corrupted_values.append(corrupted)

    def result(self, method: str, forwards: int) -> PatchingResult:
        columns = [str(i) for i in range(self.width)] if self.by != "layer" else ["all"]
        return patching_result(self.raw, self.clean_values, self.corrupted_values, method=method, by=self.by,
                               rows=[str(l) for l in self.layers], row_title="layer", columns=columns,
                               column_title=_COLUMN_TITLE[self.by], pairs=self.pairs, tokenizer=self.tokenizer,
                               metric=self.described or self.metric.describe(), forwards=forwards)
