"""NeuronStats: per (layer, neuron) statistics over a corpus, with the top-activating contexts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from .export import FigureExport
from .persist import persistable


@persistable
@dataclass
class NeuronStats(FigureExport):
    """Statistics of a site's units (the MLP neurons by default) over a corpus.

    Attributes:
        layers: layer indices, in the order of the first axis; site: the site read.
        top_values: ``[layer, neuron, k]`` the k largest activations, best first (``-inf`` where fewer tokens).
        top_text, top_position: ``[layer, neuron, k]`` where each came from (index in the corpus, token position);
            -1 for empty slots. Ties are ordered by (text, position).
        context_ids, context_acts: ``[layer, neuron, k, 2 * context + 1]`` token ids (int32, -1 outside the text)
            and the neuron's activation on each, centred on the top position.
        mean, max, frequency: ``[layer, neuron]``: mean and max activation over all tokens, and the fraction of
            tokens on which the activation exceeds ``threshold``.
        n_texts, n_tokens, truncated: corpus size (texts, non-padding tokens, texts cut to the model's length).
        vocab: token id -> string for the ids in the context windows.
    """

    # What a loaded result is checked against (attnscope.results.validation).
    SHAPES: ClassVar[dict[str, Any]] = {
        "layers": "list layer", "top_values": "float layer neuron k", "top_text": "int layer neuron k",
        "top_position": "int layer neuron k", "context_ids": "int layer neuron k window",
        "context_acts": "float layer neuron k window", "mean": "float layer neuron", "max": "float layer neuron",
        "frequency": "float layer neuron",
    }

    layers: list[int]
    site: str
    top_values: Tensor
    top_text: Tensor
    top_position: Tensor
    context_ids: Tensor
    context_acts: Tensor
    mean: Tensor
    max: Tensor
    frequency: Tensor
    n_texts: int
    n_tokens: int
    truncated: int = 0
    top_k: int = 20
    context: int = 8
    threshold: float = 0.0
    vocab: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vocab = {int(k): v for k, v in self.vocab.items()}  # JSON keys come back as strings

    @property
    def num_neurons(self) -> int:
        return int(self.top_values.shape[1])

    def _index(self, layer: int, neuron: int) -> int:
        if layer not in self.layers:
            raise ValueError(f"layer {layer} is not in these statistics: they hold layers {self.layers}")
        if not isinstance(neuron, int) or not 0 <= neuron < self.num_neurons:
            raise ValueError(f"neuron {neuron!r} out of range: layers have {self.num_neurons} neurons "
                             f"(0..{self.num_neurons - 1})")
        return self.layers.index(layer)

    def _token_id(self, token: int | str) -> int:
        if isinstance(token, int):
            return token
        matches = [i for i, s in self.vocab.items() if s == token]
        if not matches:
            raise ValueError(f"token {token!r} occurs in no top context of these statistics")
        return matches[0]

    def _centre_ids(self) -> Tensor:
        return self.context_ids[..., self.context]  # [layer, neuron, k]

    def top_neurons(self, token: int | str | None = None, k: int = 10) -> list[tuple[int, int, int, float]]:
        """Neurons whose top contexts are centred on ``token`` (a string of the tokenizer or an id), as
        ``[(layer, neuron, count, max activation), ...]``: most top contexts on the token first, then by activation.
        With ``token=None``: the neurons with the largest maximum activation (count = contexts kept)."""
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if token is None:
            counts = (self.top_text >= 0).sum(-1)
            scores = self.max
        else:
            hit = self._centre_ids() == self._token_id(token)
            counts = hit.sum(-1)
            scores = torch.where(hit, self.top_values, float("-inf")).amax(-1)
        order = sorted(((int(counts[li, n]), float(scores[li, n]), li, n)
                        for li in range(len(self.layers)) for n in range(self.num_neurons) if counts[li, n] > 0),
                       key=lambda t: (-t[0], -t[1], t[2], t[3]))
        return [(self.layers[li], n, c, s) for c, s, li, n in order[:k]]

    def contexts(self, layer: int, neuron: int) -> list[dict[str, Any]]:
        """The top contexts of one neuron: dicts with ``text``, ``position``, ``value``, ``tokens``,
        ``activations`` (the window, padding removed) and ``centre`` (the top token's index in the window)."""
        li = self._index(layer, neuron)
        out = []
        for j in range(self.top_values.shape[-1]):
            if int(self.top_text[li, neuron, j]) < 0:
                break
            ids = self.context_ids[li, neuron, j]
            keep = (ids >= 0).nonzero().flatten().tolist()
            out.append({
                "text": int(self.top_text[li, neuron, j]), "position": int(self.top_position[li, neuron, j]),
                "value": float(self.top_values[li, neuron, j]),
                "tokens": [self.vocab.get(int(ids[i]), str(int(ids[i]))) for i in keep],
                "activations": [float(self.context_acts[li, neuron, j, i]) for i in keep],
                "centre": keep.index(self.context),
            })
        return out

    def to_pandas(self):
        """One row per (layer, neuron): mean, max, frequency and the top context's token and value."""
        import pandas as pd

        centre = self._centre_ids()
        rows = []
        for li, layer in enumerate(self.layers):
            for n in range(self.num_neurons):
                top_id = int(centre[li, n, 0])
                rows.append({"layer": layer, "neuron": n, "mean": float(self.mean[li, n]),
                             "max": float(self.max[li, n]), "frequency": float(self.frequency[li, n]),
                             "top_value": float(self.top_values[li, n, 0]),
                             "top_token": self.vocab.get(top_id) if top_id >= 0 else None,
                             "top_text": int(self.top_text[li, n, 0]),
                             "top_position": int(self.top_position[li, n, 0])})
        return pd.DataFrame(rows)

    def view(self, layer: int, neuron: int):
        """Neuroscope-style view: each top context, its tokens coloured by this neuron's activation (hover: the
        token and its value), the top token marked in the label."""
        from ..viz import token_view

        examples = [{"tokens": c["tokens"], "scores": c["activations"],
                     "label": f"#{i + 1} text {c['text']}, position {c['position']} "
                              f"({c['tokens'][c['centre']]!s}): {c['value']:.4g}"}
                    for i, c in enumerate(self.contexts(layer, neuron))]
        if not examples:
            raise ValueError(f"layer {layer}, neuron {neuron} has no contexts")
        return token_view(examples, title=f"attnscope · layer {layer}, neuron {neuron} ({self.site}): top contexts")

    def show(self, layer: int, neuron: int):
        from ..viz import show

        return show(self.view(layer, neuron))

    def save_html(self, path, layer: int, neuron: int):
        return self.view(layer, neuron).save_html(path)

    def plot(self, layer: int | None = None, *, figsize=None):
        """Matplotlib: per layer, each neuron's firing frequency against its mean activation."""
        import matplotlib.pyplot as plt

        chosen = self.layers if layer is None else [layer]
        fig, axes = plt.subplots(1, len(chosen), figsize=figsize or (4 * len(chosen), 3.5), squeeze=False)
        for ax, lay in zip(axes[0], chosen):
            li = self._index(lay, 0)
            ax.scatter(self.mean[li].numpy(), self.frequency[li].numpy(), s=6)
            ax.set_xlabel("mean activation")
            ax.set_ylabel(f"frequency (> {self.threshold:g})")
            ax.set_title(f"layer {lay}")
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        return (f"NeuronStats({len(self.layers)} layers x {self.num_neurons} neurons, top {self.top_k}, "
                f"{self.n_texts} texts, {self.n_tokens} tokens)")
