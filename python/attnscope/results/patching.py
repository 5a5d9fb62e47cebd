"""PatchingResult: what activation, attribution or path patching measured, normalised and raw."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .export import FigureExport
from .persist import persistable

__all__ = ["PatchingComparison", "PatchingResult"]


@persistable
@dataclass
class PatchingComparison:
    """How an approximation (attribution patching) agrees with exact patching on the same grid.

    Attributes:
        correlation: Pearson correlation of the two normalised grids (raw effects where normalisation is undefined)
            over every cell both define. max_abs_error: the largest absolute difference there.
        disagreements: the largest differences first: ``{"site", "example", "row", "column", "approx", "exact"}``.
        cells: how many cells were compared.
    """

    correlation: float
    max_abs_error: float
    disagreements: list[dict]
    cells: int

    def __repr__(self) -> str:
        top = self.disagreements[0] if self.disagreements else None
        worst = f"; largest disagreement at {top['site']} {top['row']}/{top['column']}" if top else ""
        return f"PatchingComparison(correlation={self.correlation:.4f} over {self.cells} cells{worst})"


@persistable
@dataclass
class PatchingResult(FigureExport):
    """The outcome of :func:`attnscope.activation_patching`, :func:`attnscope.attribution_patching` or
    :func:`attnscope.path_patching`.

    Every grid is ``[batch, row, column]``: rows are ``rows`` (layers, or sender heads for path patching), columns are
    ``columns`` (positions, heads, ``"all"`` for whole-layer patches, or receiver inputs); positions beyond an
    example's length are NaN.

    Attributes:
        raw: ``{site: [batch, row, column]}`` the metric of the corrupted run with that activation patched from the
            clean run (attribution patching: the first-order estimate of it).
        normalized: ``{site: [batch, row, column]}`` ``(raw - corrupted) / (clean - corrupted)``: 0 = the corrupted
            run's metric, 1 = the clean run's. NaN for every cell of an example whose clean and corrupted metrics
            are equal (``undefined[example]`` is True and ``note`` says why).
        clean_metric, corrupted_metric: ``[batch]`` float64.
        method: ``"activation"``, ``"attribution"`` or ``"path"``; by: ``"position"``, ``"layer"``, ``"head"`` or
            ``"path"``.
        rows, row_title, columns, column_title: labels of the grid's axes (``columns`` of ``by="position"`` are
            position indices; ``tokens[example]`` labels them).
        tokens: clean token strings per example; corrupted_tokens: the corrupted ones. metric: its description.
        forwards: model forwards run for the patches (rows x runs), for cost comparisons.
    """

    raw: dict[str, Tensor]
    normalized: dict[str, Tensor]
    clean_metric: Tensor
    corrupted_metric: Tensor
    method: str
    by: str
    rows: list[str]
    row_title: str
    columns: list[str]
    column_title: str
    tokens: list[list[str]]
    corrupted_tokens: list[list[str]]
    metric: str
    undefined: list[bool] = field(default_factory=list)
    note: str = ""
    forwards: int = 0

    @property
    def sites(self) -> list[str]:
        return list(self.raw)

    def _site(self, site: str | None) -> str:
        if site is None:
            return self.sites[0]
        if site not in self.raw:
            raise ValueError(f"site {site!r} is not in this result (sites {self.sites})")
        return site

    def _example(self, example: int) -> int:
        b = int(self.clean_metric.shape[0])
        if isinstance(example, bool) or not isinstance(example, int) or not 0 <= example < b:
            raise ValueError(f"example {example!r} out of range: the result holds {b} examples (0..{b - 1})")
        return example

    def values(self, site: str | None = None, example: int = 0, *, normalized: bool = True) -> Tensor:
        """``[row, column]`` of one example (normalised, or raw with ``normalized=False``)."""
        grid = self.normalized if normalized else self.raw
        return grid[self._site(site)][self._example(example)]

    def column_labels(self, example: int = 0) -> list[str]:
        """Column labels; by position: ``"index token"`` of the example's clean tokens."""
        if self.by != "position":
            return list(self.columns)
        toks = self.tokens[self._example(example)]
        return [f"{i} {toks[i]}" if i < len(toks) else str(i) for i in range(len(self.columns))]

    def top(self, k: int = 5, site: str | None = None, example: int = 0) -> list[tuple[str, str, float]]:
        """The ``k`` cells with the largest normalised effect (raw effect where undefined): ``(row, column, value)``."""
        grid = self._effect(self._site(site), self._example(example))
        labels = self.column_labels(example)
        flat = torch.nan_to_num(grid.reshape(-1), nan=-math.inf)
        order = flat.argsort(descending=True)[:k].tolist()
        n_cols = grid.shape[1]
        return [(self.rows[i // n_cols], labels[i % n_cols], float(flat[i])) for i in order if math.isfinite(flat[i])]

    def _effect(self, site: str, example: int) -> Tensor:
        if self.undefined and self.undefined[example]:
            return self.raw[site][example] - self.corrupted_metric[example]
        return self.normalized[site][example]

    # --- comparison -------------------------------------------------------------------------------------------
    def compare(self, exact: PatchingResult, k: int = 5) -> PatchingComparison:
        """Agreement with ``exact`` (a result of the same grid, e.g. activation patching for this attribution
        patching): correlation, largest absolute error and the ``k`` largest disagreements."""
        if not isinstance(exact, PatchingResult):
            raise TypeError(f"compare takes a PatchingResult, got {type(exact).__name__}")
        if exact.by != self.by or exact.rows != self.rows or exact.sites != self.sites:
            raise ValueError(f"the grids differ: this result is by={self.by!r} over {self.sites} with rows "
                             f"{self.rows}; the other by={exact.by!r} over {exact.sites} with rows {exact.rows}")
        xs, ys, where = [], [], []
        for site in self.sites:
            if exact.raw[site].shape != self.raw[site].shape:
                raise ValueError(f"site {site!r}: shapes differ, {tuple(self.raw[site].shape)} vs "
                                 f"{tuple(exact.raw[site].shape)}")
            for b in range(self.raw[site].shape[0]):
                a, e = self._effect(site, b), exact._effect(site, b)
                ok = torch.isfinite(a) & torch.isfinite(e)
                for r, c in ok.nonzero().tolist():
                    xs.append(float(a[r, c]))
                    ys.append(float(e[r, c]))
                    where.append((site, b, r, c))
        if len(xs) < 2:
            raise ValueError("fewer than two cells are defined in both results; nothing to correlate")
        x, y = torch.tensor(xs, dtype=torch.float64), torch.tensor(ys, dtype=torch.float64)
        xc, yc = x - x.mean(), y - y.mean()
        denom = float(xc.norm() * yc.norm())
        corr = float((xc * yc).sum()) / denom if denom > 0 else float("nan")
        err = (x - y).abs()
        order = err.argsort(descending=True)[:k].tolist()
        dis = []
        for i in order:
            site, b, r, c = where[i]
            dis.append({"site": site, "example": b, "row": self.rows[r], "column": self.column_labels(b)[c],
                        "approx": xs[i], "exact": ys[i]})
        return PatchingComparison(corr, float(err.max()), dis, len(xs))

    # --- exports and views ------------------------------------------------------------------------------------
    def to_pandas(self):
        """One row per (example, site, row, column): raw and normalised values, with the labels."""
        import pandas as pd

        records = []
        for site in self.sites:
            raw, norm = self.raw[site], self.normalized[site]
            for b in range(raw.shape[0]):
                labels = self.column_labels(b)
                for r, row in enumerate(self.rows):
                    for c, col in enumerate(labels):
                        if math.isnan(float(raw[b, r, c])):
                            continue
                        records.append({"example": b, "site": site, self.row_title: row, self.column_title: col,
                                        "raw": float(raw[b, r, c]), "normalized": float(norm[b, r, c])})
        return pd.DataFrame(records)

    def _grid(self, site: str | None, example: int) -> tuple[Tensor, list[str], str]:
        site = self._site(site)
        example = self._example(example)
        grid = self._effect(site, example)
        keep = [c for c in range(grid.shape[1]) if not bool(torch.isnan(self.raw[site][example][:, c]).all())]
        labels = [self.column_labels(example)[c] for c in keep]
        what = "raw effect (clean = corrupted: normalisation undefined)" if self.undefined and \
            self.undefined[example] else "normalised effect (0 = corrupted, 1 = clean)"
        return grid[:, keep], labels, f"{site}: {what}"

    def view(self, site: str | None = None, example: int = 0):
        """Heatmap rows x columns (layers x positions with token labels, or layers x heads), diverging colours
        around 0, hover with labels and value."""
        from ..viz import matrix_view

        grid, labels, what = self._grid(site, example)
        return matrix_view(grid, self.rows, labels, row_title=self.row_title, col_title=self.column_title,
                           diverging=True, title=f"attnscope · {self.method} patching · {what} · {self.metric}")

    def show(self, site: str | None = None, example: int = 0):
        """Display :meth:`view` in a notebook."""
        from ..viz import show

        return show(self.view(site, example))

    def save_html(self, path, site: str | None = None, example: int = 0):
        return self.view(site, example).save_html(path)

    def plot(self, site: str | None = None, example: int = 0, *, figsize=None):
        """Matplotlib heatmap of :meth:`view`'s grid (RdBu, centred on 0). Returns the Figure."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("PatchingResult.plot needs matplotlib: pip install matplotlib") from e
        grid, labels, what = self._grid(site, example)
        vals = grid.float().numpy()
        finite = grid[torch.isfinite(grid)]
        vmax = max(float(finite.abs().max()) if finite.numel() else 1.0, 1e-12)
        fig, ax = plt.subplots(figsize=figsize or (2 + 0.45 * len(labels), 1.5 + 0.4 * len(self.rows)))
        im = ax.imshow(vals, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto", origin="lower")
        ax.set_xticks(range(len(labels)), labels, rotation=60, fontsize=7)
        ax.set_yticks(range(len(self.rows)), self.rows)
        ax.set_xlabel(self.column_title)
        ax.set_ylabel(self.row_title)
        ax.set_title(what, fontsize=9)
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        b = int(self.clean_metric.shape[0])
        shape = f"{len(self.rows)} {self.row_title}s x {len(self.columns)} {self.column_title}s"
        return (f"PatchingResult({self.method} patching by {self.by}, {b} example(s), sites {self.sites}, {shape}; "
                f"metric {self.metric}: clean {float(self.clean_metric[0]):.4g}, corrupted "
                f"{float(self.corrupted_metric[0]):.4g})")
