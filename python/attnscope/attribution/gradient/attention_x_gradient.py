"""attention_x_gradient: the Chefer et al. (2021) rule on captured attention and its gradient.

One forward with every layer captured (``grad=True``), one backward of the target; then per layer
``Abar = mean_h max(0, dF/dA * A)`` and ``R <- R + Abar R`` from the first layer up (C++ op
``attention_grad_relevance``). The scores of an example are the row of ``R`` at the target's position: the last
non-padding token for causal LMs, the first token ([CLS]) otherwise, or the mean over non-padding rows for
mean-pooled encoders (``position="mean"``).

Reference: H. Chefer, S. Gur, L. Wolf. Generic Attention-model Explainability for Interpreting Bi-Modal and
Encoder-Decoder Transformers. ICCV 2021.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ...capturing import capture
from ...ops import attention_grad_relevance
from ...results.attribution import AttributionResult
from ..base import AttributionMethod, Request
from ..chunking import progress_bar
from ..prediction import predict
from ..scope import scoped_model
from .base import MethodOutput, gradient_result
from .seq2seq import refuse_encoder_decoder

__all__ = ["AttentionXGradient", "attention_x_gradient", "relevance_rows"]


class AttentionXGradient(AttributionMethod):
    """One captured forward and one backward; no hidden axis (``raw`` is ``scores[..., None]``)."""

    name = "attention_x_gradient"

    def run(self, request: Request) -> AttributionResult:
        model, tokenizer, tgt, original = request.model, request.tokenizer, request.target, request.inputs
        refuse_encoder_decoder(model, self.name)
        with scoped_model(model):
            prepared = tgt.extend(original, tokenizer, model)
            rows = torch.arange(prepared.batch, device=prepared.input_ids.device)

            def score(outputs):
                tgt.bind(outputs, prepared, model, tokenizer)
                request.prediction = predict(outputs, prepared, tokenizer, model)
                return tgt(outputs, rows, prepared.attention_mask)

            def position(outputs) -> str:
                logits = getattr(outputs, "logits", None)
                if isinstance(logits, Tensor) and logits.dim() == 3:
                    return "last"  # causal LMs: the row that predicts
                return "mean" if getattr(tgt, "name", "") == "similarity" else "first"  # pooled encoders / [CLS]

            with progress_bar(1, "attention_x_gradient", "pass", request.progress, 2) as bar:
                scores, f_input = attention_x_gradient(model, prepared.forward_kwargs(rows), score, position=position)
                bar.update(1)
        n_used = torch.ones(prepared.batch, dtype=torch.long)  # one forward and one backward
        out = MethodOutput(raw=scores.unsqueeze(-1), delta=None, n_steps_used=n_used, f_input=f_input)
        return gradient_result(scores.unsqueeze(-1), prepared, original, tokenizer, self.name, tgt, out)


def relevance_rows(relevance: Tensor, attention_mask: Tensor, position: str) -> Tensor:
    """[batch, n] scores from [batch, n, n] relevance: the row at ``position`` ("last", "first", "mean")."""
    mask = attention_mask.to(relevance.device).bool()
    if position == "mean":
        weights = mask.to(relevance.dtype)
        rows = (relevance * weights[:, :, None]).sum(1) / weights.sum(1, keepdim=True)
    elif position in ("last", "first"):
        n = mask.shape[1]
        idx = torch.arange(n, device=mask.device)
        pick = (idx * mask).amax(1) if position == "last" else torch.where(mask, idx, n).amin(1)
        rows = relevance[torch.arange(relevance.shape[0]), pick]
    else:
        raise ValueError(f"position must be 'last', 'first' or 'mean', got {position!r}")
    return rows.masked_fill(~mask, 0.0)  # padding positions never receive attribution


def attention_x_gradient(model: nn.Module, inputs: dict[str, Tensor], score: Callable[[object], Tensor], *,
                         position: str | Callable[[object], str]) -> tuple[Tensor, Tensor]:
    """Scores [batch, seq] and the target values [batch] for ``score(outputs) -> Tensor[batch]``.

    ``position`` is "last", "first", "mean", or a function of the model outputs returning one of them.
    """
    from ...adapters import find_word_embeddings

    # The attention outputs must carry a graph even when the parameters are frozen: start it at the embeddings.
    handle = find_word_embeddings(model).register_forward_hook(lambda _m, _i, out: out.detach().requires_grad_())
    try:
        with torch.enable_grad(), capture(model, grad=True) as cap:
            outputs = model(**inputs)
            target = score(outputs)
            target.sum().backward()
    finally:
        handle.remove()
    if callable(position):
        position = position(outputs)
    res = cap.result
    grad = res.grad
    if grad is None:
        raise RuntimeError("no attention gradient was recorded: the target does not depend on the attention outputs")
    relevance = attention_grad_relevance(res.weights, grad)
    mask = inputs.get("attention_mask")
    if mask is None:
        mask = torch.ones(relevance.shape[0], relevance.shape[1], dtype=torch.long)
    return relevance_rows(relevance, mask, position), target.detach()
