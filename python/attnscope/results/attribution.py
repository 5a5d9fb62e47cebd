"""AttributionResult: token scores of a gradient or perturbation attribution, with the views a user asks for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor

from .export import FigureExport
from .persist import persistable

_WORD_START = ("Ġ", "▁", " ")  # byte-level BPE and SentencePiece mark a word start on the piece
_CONTINUE = "##"  # WordPiece marks a continuation


@persistable
@dataclass
class AttributionResult(FigureExport):
    """Attributions of one call of :func:`attnscope.attribute`.

    Attributes:
        scores: ``[batch, seq]`` attribution per token (the sum over the hidden axis of ``raw``); 0 at padding.
        raw: ``[batch, seq, hidden]`` attribution per activation of the attributed layer.
        tokens: per example, the token strings (``tokenizer.convert_ids_to_tokens``; ids as strings without one).
        input_ids: ``[batch, seq]``; attention_mask: ``[batch, seq]`` (0 = padding).
        delta: ``[batch]`` completeness error ``sum(attributions) - (F(x) - F(baseline))`` for integrated
            gradients, else None.
        n_steps_used: ``[batch]`` gradient evaluations per example (adaptive integration: all that were spent).
        target: the resolved target (``str(res.target)`` describes it); method: the method's name.
        f_input / f_baseline: ``[batch]`` target values at the input and the baseline (path methods; perturbation
            methods: f_baseline is the target with every feature absent, where the method evaluates it).

    Perturbation methods (occlusion, lime, kernel_shap, shapley_sampling) also fill:
        feature_scores: ``[batch, n_features]`` float64 score per feature (LIME / KernelSHAP: the surrogate's
            coefficients); NaN past an example's last feature. ``scores`` gives each token its feature's score.
        feature_mask: ``[batch, seq]`` long, the feature of each token (-1: padding or never perturbed).
        intercept, local_r2: ``[batch]`` the surrogate's intercept and weighted R² (lime, kernel_shap).
        n_forwards: ``[batch]`` model rows actually run per example (distinct coalitions, plus the input);
            ``n_steps_used`` counts the coalitions the estimate used.
        replacement_token: the token id that replaced absent features; kv_reuse: whether the causal LM's prefix
            cache was reused.
        standard_errors: ``[batch, n_features]`` float64 (kernel_shap, shapley_sampling): the estimated standard
            error of each feature's score (``feature_scores ± 1.96 * standard_errors`` is a 95 % interval); 0 where
            the values are exact, NaN past an example's last feature or where fewer than two samples give none.
        stop_reason: per example, why sampling stopped: ``"n_samples"`` (no tolerance), ``"tolerance"`` (largest
            standard error <= tolerance), ``"budget"`` (n_samples spent first) or ``"exhausted"`` (exact).

    Encoder-decoder models (gradient methods): ``scores``/``raw``/``tokens`` are the source side (the encoder's
    tokens), and the target prefix (the decoder's tokens) has
        decoder_scores: ``[batch, target]``; decoder_raw: ``[batch, target, hidden]``; decoder_tokens;
        decoder_input_ids, decoder_attention_mask: ``[batch, target]``.
    Both sides together add up to ``F(x) - F(baseline) + delta`` for integrated gradients.

    What the views show beside the scores (as Captum's ``visualize_text``):
        target_labels: per example, the target as text (``next token ' cat'``, ``class 1 (POSITIVE)``).
        predicted, predicted_id, predicted_prob: per example, the model's prediction on the input (a classifier's
            class, a language model's next token at the last input position), its id ``[batch]`` and softmax
            probability ``[batch]``; None for models without logits (sentence encoders) and encoder-decoder models.
    """

    # What a loaded result is checked against (attnscope.results.validation).
    SHAPES: ClassVar[dict[str, Any]] = {
        "scores": "float batch seq", "raw": "float batch seq hidden", "tokens": "list batch",
        "input_ids": "int batch seq", "attention_mask": "mask batch seq", "delta": "float batch",
        "n_steps_used": "any batch", "f_input": "float batch", "f_baseline": "float batch",
        "feature_scores": "float batch feature", "feature_mask": "int batch seq", "intercept": "float batch",
        "local_r2": "float batch", "n_forwards": "any batch", "decoder_scores": "float batch target",
        "decoder_raw": "float batch target hidden", "decoder_tokens": "list batch",
        "decoder_input_ids": "int batch target", "decoder_attention_mask": "mask batch target",
    }

    scores: Tensor
    raw: Tensor
    tokens: list[list[str]]
    input_ids: Tensor
    attention_mask: Tensor
    method: str
    target: object
    delta: Tensor | None = None
    n_steps_used: Tensor | None = None
    f_input: Tensor | None = None
    f_baseline: Tensor | None = None
    word_ids: list[list[int | None]] | None = field(default=None, repr=False)
    feature_scores: Tensor | None = None
    feature_mask: Tensor | None = None
    intercept: Tensor | None = None
    local_r2: Tensor | None = None
    n_forwards: Tensor | None = None
    replacement_token: int | None = None
    kv_reuse: bool | None = None
    standard_errors: Tensor | None = None
    stop_reason: list[str] | None = None
    decoder_scores: Tensor | None = None
    decoder_raw: Tensor | None = None
    decoder_tokens: list[list[str]] | None = None
    decoder_input_ids: Tensor | None = None
    decoder_attention_mask: Tensor | None = None
    target_labels: list[str] | None = None
    predicted: list[str] | None = None
    predicted_id: Tensor | None = None
    predicted_prob: Tensor | None = None

    def __repr__(self) -> str:
        b, n = self.scores.shape
        delta = "" if self.delta is None else f", max|delta|={self.delta.abs().max().item():.3g}"
        return f"AttributionResult(method={self.method!r}, target={self.target}, batch={b}, seq={n}{delta})"

    def _valid(self, i: int) -> list[int]:
        return [j for j in range(self.scores.shape[1]) if int(self.attention_mask[i, j]) != 0]

    def words(self) -> list[list[tuple[str, float]]]:
        """Per example, ``(word, score)`` pairs: sub-word pieces merged into words (scores summed), padding left out.

        Uses the tokenizer's word ids when the inputs were a fast tokenizer's BatchEncoding, else the pieces' markers
        (``##`` continues a WordPiece word; ``Ġ``/``▁`` start a BPE/SentencePiece word).
        """
        out = []
        for i in range(self.scores.shape[0]):
            words: list[tuple[str, float, bool]] = []
            wid = self.word_ids[i] if self.word_ids is not None and i < len(self.word_ids) else None
            bpe = _is_bpe(self.tokens[i])
            prev_key: object = None
            for j in self._valid(i):
                tok, score = self.tokens[i][j], float(self.scores[i, j])
                special = _is_special(tok)
                if wid is not None:
                    key = wid[j]
                    joined = key is not None and key == prev_key
                    prev_key = key
                elif bpe:
                    joined = not special and not tok.startswith(_WORD_START) and bool(words) and not words[-1][2]
                else:
                    joined = tok.startswith(_CONTINUE) and bool(words)
                piece = tok if special else (tok[2:] if tok.startswith(_CONTINUE) else tok.lstrip("".join(_WORD_START)))
                if joined:
                    w, s, _ = words[-1]
                    words[-1] = (w + piece, s + score, False)
                else:
                    words.append((piece, score, special))
            out.append([(w, s) for w, s, _ in words])
        return out

    def top(self, k: int = 5) -> list[list[tuple[int, str, float]]]:
        """Per example, the ``k`` tokens with the largest ``|score|``: ``(position, token, score)``, largest first."""
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        out = []
        for i in range(self.scores.shape[0]):
            valid = self._valid(i)
            order = sorted(valid, key=lambda j: -abs(float(self.scores[i, j])))[:k]
            out.append([(j, self.tokens[i][j], float(self.scores[i, j])) for j in order])
        return out

    def to_pandas(self):
        """Long table: one row per (example, non-padding position) with token, score, method, target (and delta).

        Encoder-decoder results add the target prefix's rows and a ``side`` column (``source`` or ``target``)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("to_pandas() needs pandas: pip install pandas") from err
        rows = []
        for i in range(self.scores.shape[0]):
            for side, j, token, token_id, score in self._entries(i):
                row = {
                    "example": i,
                    "position": j,
                    "token": token,
                    "token_id": token_id,
                    "score": score,
                    "method": self.method,
                    "target": str(self.target),
                }
                if self.decoder_scores is not None:
                    row["side"] = side
                if self.delta is not None:
                    row["delta"] = float(self.delta[i])
                rows.append(row)
        return pd.DataFrame(rows)

    def _entries(self, i: int) -> list[tuple[str, int, str, int, float]]:
        """``(side, position, token, id, score)`` of example ``i``: the source's non-padding tokens, then (encoder-
        decoder models) the target prefix's."""
        out = [("source", j, self.tokens[i][j], int(self.input_ids[i, j]), float(self.scores[i, j]))
               for j in self._valid(i)]
        if self.decoder_scores is not None:
            out += [("target", j, self.decoder_tokens[i][j], int(self.decoder_input_ids[i, j]),
                     float(self.decoder_scores[i, j])) for j in range(self.decoder_scores.shape[1])
                    if int(self.decoder_attention_mask[i, j]) != 0]
        return out

    # --- views ----------------------------------------------------------------------------------------------
    def view(self):
        """Tokens coloured by score (symmetric diverging scale, legend, values on hover, word/token toggle);
        encoder-decoder results show each example's source and its target prefix."""
        from ..viz import token_view

        examples = []
        for i, words in enumerate(self.words()):
            valid = self._valid(i)
            examples.append({
                "label": self._label(i),
                "tokens": [self.tokens[i][j] for j in valid],
                "scores": [float(self.scores[i, j]) for j in valid],
                "words": [w for w, _ in words],
                "word_scores": [s for _, s in words],
            })
            if self.decoder_scores is not None:
                prefix = [e for e in self._entries(i) if e[0] == "target"]
                examples.append({"label": f"example {i} · target prefix", "tokens": [e[2] for e in prefix],
                                 "scores": [e[4] for e in prefix]})
        return token_view(examples, title="attnscope · attribution")

    def _label(self, i: int) -> str:
        """Example ``i``'s caption: method, target as text, the model's prediction and probability, the score sum."""
        parts = [f"example {i}"] if self.scores.shape[0] > 1 else []
        target = self.target_labels[i] if self.target_labels is not None else str(self.target)
        parts += [self.method, f"target: {target}"]
        if self.predicted is not None:
            parts.append(f"predicted: {self.predicted[i]} (p = {float(self.predicted_prob[i]):.3f})")
        parts.append(f"attribution sum {float(self.scores[i].sum()):.3g}")
        return " · ".join(parts)

    def show(self):
        """Display :meth:`view` in a notebook (an iframe that works in JupyterLab, Notebook and VS Code)."""
        from ..viz import show

        return show(self.view())

    def save_html(self, path):
        """Write :meth:`view` as one self-contained HTML file; returns its path."""
        return self.view().save_html(path)

    def plot(self, example: int = 0):
        """A matplotlib bar chart of one example's token scores (positive red, negative blue)."""
        import matplotlib.pyplot as plt

        valid = self._valid(example)
        scores = [float(self.scores[example, j]) for j in valid]
        fig, ax = plt.subplots(figsize=(max(4, 0.35 * len(valid)), 3))
        ax.bar(range(len(valid)), scores, color=["#dc2828" if v >= 0 else "#285ae6" for v in scores])
        ax.set_xticks(range(len(valid)), [self.tokens[example][j] for j in valid], rotation=90, fontsize=7)
        ax.axhline(0, color="#888", linewidth=0.8)
        ax.set_ylabel("attribution")
        ax.set_title(f"{self.method} · target {self.target}")
        fig.tight_layout()
        return fig


def _is_bpe(tokens: list[str]) -> bool:
    """Byte-level BPE / SentencePiece pieces mark word starts; WordPiece marks continuations."""
    return any(t.startswith(("Ġ", "▁")) for t in tokens)


def _is_special(token: str) -> bool:
    return len(token) > 2 and ((token[0] == "[" and token[-1] == "]") or (token[0] == "<" and token[-1] == ">"))


__all__ = ["AttributionResult"]
