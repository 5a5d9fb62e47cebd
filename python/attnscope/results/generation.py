"""GenerationAttribution: a generated × source matrix, with the views a user asks for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor

from .export import FigureExport
from .persist import persistable



def _signed(method: str) -> bool:
    """Whether ``method``'s generation scores have a sign (a diverging colour scale), from the method catalog."""
    from ..attribution.catalog import CATALOG

    return any(s.name == method and s.signed_in_generation for s in CATALOG)


@persistable
@dataclass
class GenerationAttribution(FigureExport):
    """Attributions of every generated token, from :func:`attnscope.attribute_generation`.

    Attributes:
        matrix: ``[generated, prompt + generated]``: row ``t`` attributes generated token ``t`` to the prompt tokens
            and the tokens generated before it; zero right of the diagonal (``source >= prompt_len + t``).
        prompt_ids: ``[prompt]``; generated_ids: ``[generated]``.
        prompt_tokens, generated_tokens: token strings (ids as strings without a tokenizer).
        step_scores: ``[generated]`` the target value of each step at the input (the probability for
            ``target="prob"``, the log-probability for ``"logprob"``...).
        method, target: what was computed; engine: how the backward passes ran (``is_grads_batched``,
            ``expanded``, ``kv_reuse``, ``full`` or ``capture``); n_forwards: sequence rows run through the model.
        prefix_ids, prefix_tokens: encoder-decoder models: the decoder's tokens before the generated ones (its
            start token), the columns between the source (``prompt_*``) and the generated tokens; empty otherwise.
    """

    # What a loaded result is checked against (attnscope.results.validation).
    SHAPES: ClassVar[dict[str, Any]] = {
        "matrix": "float generated source", "prompt_ids": "int prompt", "generated_ids": "int generated",
        "prompt_tokens": "list prompt", "generated_tokens": "list generated", "step_scores": "float generated",
        "prefix_ids": "int prefix", "prefix_tokens": "list prefix",
    }

    matrix: Tensor
    prompt_ids: Tensor
    generated_ids: Tensor
    prompt_tokens: list[str]
    generated_tokens: list[str]
    step_scores: Tensor
    method: str
    target: str
    engine: str = ""
    n_forwards: int = 0
    prefix_ids: Tensor | None = None
    prefix_tokens: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> list[str]:
        """All source tokens: the prompt, the decoder's prefix (encoder-decoder models), then the generated ones
        (the matrix's columns)."""
        return list(self.prompt_tokens) + list(self.prefix_tokens) + list(self.generated_tokens)

    @property
    def prompt_len(self) -> int:
        return len(self.prompt_tokens)

    @property
    def context_len(self) -> int:
        """Columns before the first generated token: the prompt (source) and the decoder's prefix."""
        return len(self.prompt_tokens) + len(self.prefix_tokens)

    def __repr__(self) -> str:
        t, n = self.matrix.shape
        return (f"GenerationAttribution(method={self.method!r}, target={self.target!r}, prompt={self.prompt_len}, "
                f"generated={t}, engine={self.engine!r})")

    def prompt_totals(self) -> Tensor:
        """``[prompt]``: each prompt token's attribution summed over all generated tokens."""
        return self.matrix[:, : self.prompt_len].sum(0)

    def to_pandas(self):
        """Long table: one row per (generated step, source position left of it) with both tokens and the score."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("to_pandas() needs pandas: pip install pandas") from err
        sources = self.tokens
        rows = []
        for t, tok in enumerate(self.generated_tokens):
            for s in range(self.context_len + t):
                rows.append({
                    "step": t,
                    "generated_token": tok,
                    "generated_id": int(self.generated_ids[t]),
                    "step_score": float(self.step_scores[t]),
                    "source_position": s,
                    "source_token": sources[s],
                    "source_part": "prompt" if s < self.prompt_len else "prefix" if s < self.context_len else
                    "generated",
                    "score": float(self.matrix[t, s]),
                    "method": self.method,
                    "target": self.target,
                })
        return pd.DataFrame(rows)

    # --- views ----------------------------------------------------------------------------------------------
    def view(self):
        """Heatmap of generated (rows) × source tokens (columns); hover shows both tokens and the value."""
        from ..viz import matrix_view
        from ..viz.readable import readable_tokens

        shown = readable_tokens(self.tokens)
        generated = shown[self.context_len:]
        rows = [f"{t}: {tok} ({self.target} {float(self.step_scores[t]):.3g})" for t, tok in enumerate(generated)]
        cols = [f"{s}: {tok}" for s, tok in enumerate(shown)]
        # encoder-decoder models: source | decoder prefix (its start token) | generated
        sections = [(0, "source"), (self.prompt_len, "prefix")] if self.prefix_tokens else [(0, "prompt")]
        sections += [(self.context_len, "generated")] if generated else []
        return matrix_view(self.matrix, rows, cols, row_title="generated", col_title="source",
                           diverging=_signed(self.method), token_count=len(cols), sections=sections,
                           title=f"attnscope · generation · {self.method} · target {self.target}")

    def show(self):
        """Display :meth:`view` in a notebook (an iframe that works in JupyterLab, Notebook and VS Code)."""
        from ..viz import show

        return show(self.view())

    def save_html(self, path):
        """Write :meth:`view` as one self-contained HTML file; returns its path."""
        return self.view().save_html(path)

    def plot(self):
        """A matplotlib heatmap of the matrix (diverging for signed methods)."""
        import matplotlib.pyplot as plt

        m = self.matrix.float().numpy()
        t, n = m.shape
        fig, ax = plt.subplots(figsize=(max(4, 0.3 * n + 2), max(3, 0.3 * t + 1.5)))
        if _signed(self.method):
            v = float(abs(m).max()) or 1.0
            im = ax.imshow(m, cmap="RdBu_r", vmin=-v, vmax=v, aspect="auto")
        else:
            im = ax.imshow(m, cmap="Reds", vmin=0, aspect="auto")
        ax.set_xticks(range(n), self.tokens, rotation=90, fontsize=7)
        ax.set_yticks(range(t), self.generated_tokens, fontsize=7)
        ax.axvline(self.prompt_len - 0.5, color="#555", linewidth=0.8)
        if self.prefix_tokens:
            ax.axvline(self.context_len - 0.5, color="#999", linewidth=0.8, linestyle=":")
        ax.set_xlabel("source token (prompt | generated)")
        ax.set_ylabel("generated token")
        ax.set_title(f"{self.method} · target {self.target}")
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        return fig


__all__ = ["GenerationAttribution"]
