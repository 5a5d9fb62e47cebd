"""LensResult: what each layer's residual stream predicts, read through the model's own final norm and unembedding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from .export import FigureExport
from .persist import persistable


@persistable
@dataclass
class LensResult(FigureExport):
    """The logit lens of one call of :func:`attnscope.logit_lens`.

    Axes: ``layer`` follows ``layers`` (layer i = the residual stream after block i), ``pos`` follows
    ``positions``; ``T`` is 1 for a token target, 2 for a contrast (a, b).

    Attributes:
        topk_ids: ``[layer, batch, pos, k]`` int64, most likely tokens first; topk_probs: their probabilities.
        target_ids: ``[batch, T]``; target_probs/target_logprobs: ``[layer, batch, pos, T]``; target_ranks:
            ``[layer, batch, pos, T]`` int64, 0 = the most likely token.
        entropy: ``[layer, batch, pos]`` nats. kl: ``[layer, batch, pos]`` ``KL(final || layer)`` in nats, the final
            distribution being the model's own output at that position.
        tokens: input token strings per example; attention_mask ``[batch, seq]`` (0 = padding).
        vocab: ``{str(id): token string}`` for every id in ``topk_ids`` and ``target_ids``.
        target: description of the resolved target; target_kind: "token" or "contrast"; n_layers: the model's.
    """

    # What a loaded result is checked against (attnscope.results.validation).
    SHAPES: ClassVar[dict[str, Any]] = {
        "topk_ids": "int layer batch pos k", "topk_probs": "float layer batch pos k", "target_ids": "int batch t",
        "target_probs": "float layer batch pos t", "target_logprobs": "float layer batch pos t",
        "target_ranks": "int layer batch pos t", "entropy": "float layer batch pos", "kl": "float layer batch pos",
        "layers": "list layer", "positions": "list pos", "tokens": "list batch", "attention_mask": "mask batch seq",
    }

    topk_ids: Tensor
    topk_probs: Tensor
    target_ids: Tensor
    target_probs: Tensor
    target_logprobs: Tensor
    target_ranks: Tensor
    entropy: Tensor
    kl: Tensor
    layers: list[int]
    positions: list[int]
    tokens: list[list[str]]
    attention_mask: Tensor
    vocab: dict[str, str]
    target: str
    target_kind: str
    n_layers: int

    @property
    def top_k(self) -> int:
        return int(self.topk_ids.shape[-1])

    @property
    def logit_diff(self) -> Tensor:
        """``[layer, batch, pos]`` ``log p(a) - log p(b)`` (= the logit difference) for a contrast target."""
        if self.target_kind != "contrast":
            raise ValueError(f"logit_diff needs a Contrast(a, b) target; this lens has target {self.target}")
        return self.target_logprobs[..., 0] - self.target_logprobs[..., 1]

    def token(self, token_id: int) -> str:
        return self.vocab.get(str(int(token_id)), str(int(token_id)))

    def _example(self, example: int) -> int:
        b = self.topk_ids.shape[1]
        if isinstance(example, bool) or not isinstance(example, int) or not 0 <= example < b:
            raise ValueError(f"example {example!r} out of range: the result holds {b} examples (0..{b - 1})")
        return example

    def _valid_positions(self, example: int) -> list[int]:
        mask = self.attention_mask[example]
        return [i for i, p in enumerate(self.positions) if int(mask[p]) != 0]

    def top_tokens(self, layer: int, position: int, example: int = 0) -> list[tuple[str, float]]:
        """``[(token, probability), ...]`` at one layer (a model layer index) and position (an input position)."""
        example = self._example(example)
        if layer not in self.layers:
            raise ValueError(f"layer {layer} is not in this result (layers {self.layers})")
        if position not in self.positions:
            raise ValueError(f"position {position} is not in this result (positions {self.positions})")
        li, pi = self.layers.index(layer), self.positions.index(position)
        ids = self.topk_ids[li, example, pi].tolist()
        return [(self.token(t), float(p)) for t, p in zip(ids, self.topk_probs[li, example, pi].tolist())]

    def to_pandas(self):
        """One row per (example, layer, position): top-1 token and probability, the target's, entropy, KL."""
        import pandas as pd

        rows = []
        for b in range(self.topk_ids.shape[1]):
            for li, layer in enumerate(self.layers):
                for pi in self._valid_positions(b):
                    pos = self.positions[pi]
                    row = {"example": b, "layer": layer, "position": pos, "token": self.tokens[b][pos],
                           "top1": self.token(self.topk_ids[li, b, pi, 0]),
                           "top1_prob": float(self.topk_probs[li, b, pi, 0]),
                           "entropy": float(self.entropy[li, b, pi]), "kl_to_final": float(self.kl[li, b, pi])}
                    for t in range(self.target_ids.shape[1]):
                        suffix = "" if self.target_ids.shape[1] == 1 else "_ab"[t]
                        row[f"target{suffix}"] = self.token(self.target_ids[b, t])
                        row[f"target{suffix}_prob"] = float(self.target_probs[li, b, pi, t])
                        row[f"target{suffix}_rank"] = int(self.target_ranks[li, b, pi, t])
                    rows.append(row)
        return pd.DataFrame(rows)

    # --- figures and views ----------------------------------------------------------------------------------
    def plot(self, example: int = 0, *, position: int | None = None, figsize=None):
        """Matplotlib: the top-1 grid (layer x position, colour = probability, text = token) and the target's
        probability by layer at ``position`` (default: the last non-padding one). Returns the Figure."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("LensResult.plot needs matplotlib: pip install matplotlib") from e
        example = self._example(example)
        cols = self._valid_positions(example)
        pi = self._position_index(example, position)
        probs = self.topk_probs[:, example, cols, 0].numpy()
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=figsize or (4 + 0.7 * len(cols), 1.5 + 0.45 * len(self.layers)),
                                      gridspec_kw={"width_ratios": [max(3, len(cols)), 2]})
        im = ax.imshow(probs, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", origin="lower")
        for li in range(len(self.layers)):
            for ci, c in enumerate(cols):
                ax.text(ci, li, self.token(self.topk_ids[li, example, c, 0]), ha="center", va="center", fontsize=7,
                        color="white" if probs[li, ci] > 0.6 else "black")
        ax.set_xticks(range(len(cols)), [self.tokens[example][self.positions[c]] for c in cols], rotation=60,
                      fontsize=7)
        ax.set_yticks(range(len(self.layers)), [str(layer) for layer in self.layers])
        ax.set_xlabel("input position")
        ax.set_ylabel("layer")
        ax.set_title("logit lens: top-1 token")
        fig.colorbar(im, ax=ax, label="probability")
        for t in range(self.target_ids.shape[1]):
            ax2.plot(self.layers, self.target_probs[:, example, pi, t].numpy(), marker="o",
                     label=self.token(self.target_ids[example, t]))
        ax2.set_xlabel("layer")
        ax2.set_ylabel("target probability")
        ax2.set_ylim(0, 1)
        ax2.set_title(f"target at position {self.positions[pi]}")
        ax2.legend(fontsize=7)
        fig.tight_layout()
        return fig

    def _position_index(self, example: int, position: int | None) -> int:
        if position is None:
            return self._valid_positions(example)[-1]
        if position not in self.positions:
            raise ValueError(f"position {position} is not in this result (positions {self.positions})")
        return self.positions.index(position)

    def view(self, example: int = 0):
        """The logit-lens grid (layers x positions, cell = top-1 token, colour = its probability, hover = top-k),
        and the target's probability by layer at the selected position (click a column)."""
        from ..viz import lens_view

        example = self._example(example)
        cols = self._valid_positions(example)
        cells = [[{"top": [[self.token(t), float(p)] for t, p in zip(self.topk_ids[li, example, c].tolist(),
                                                                   self.topk_probs[li, example, c].tolist())],
                   "entropy": float(self.entropy[li, example, c]), "kl": float(self.kl[li, example, c]),
                   "target": [float(v) for v in self.target_probs[li, example, c].tolist()],
                   "rank": [int(v) for v in self.target_ranks[li, example, c].tolist()]}
                  for c in cols] for li in range(len(self.layers))]
        return lens_view(
            layers=[str(layer) for layer in self.layers],
            positions=[self.tokens[example][self.positions[c]] for c in cols],
            cells=cells,
            targets=[self.token(t) for t in self.target_ids[example].tolist()],
            title=f"attnscope · logit lens (target {self.target})",
        )

    def show(self, example: int = 0):
        """Display :meth:`view` in a notebook."""
        from ..viz import show

        return show(self.view(example))

    def save_html(self, path, example: int = 0):
        return self.view(example).save_html(path)

    def __repr__(self) -> str:
        g, b, p, k = self.topk_ids.shape
        return (f"LensResult({g} layers x {b} examples x {p} positions, top-{k}, target {self.target}; "
                f"last layer top-1 at the last position: {self.token(self.topk_ids[-1, 0, -1, 0])!r})")
