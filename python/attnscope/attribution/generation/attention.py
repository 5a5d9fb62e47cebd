"""Attention as a generation attribution: the head- and layer-mean attention of each step's predicting position,
captured exactly while the model keeps its attention implementation."""

from __future__ import annotations

import torch
from torch import Tensor

from ...capturing.forward import capture_forward
from ..base import AttributionMethod
from .seq2seq import Seq2SeqGenerationRun, cross_and_decoder_attention

__all__ = ["Attention"]


class Attention(AttributionMethod):
    """Generation only (``attribute`` explains with ``attention_x_gradient`` or the captured weights instead)."""

    name = "attention"

    @classmethod
    def explain_generation(cls, run, options) -> Tensor:
        if isinstance(run, Seq2SeqGenerationRun):  # cross attention over the source, self-attention over the prefix
            with run.bar(1, "attention") as bar:
                matrix = cross_and_decoder_attention(run)
                bar.update(1)
            run.engine_used = "capture"
            return matrix
        with run.bar(1, "attention") as bar:
            res, _ = capture_forward(run.model, {"input_ids": run.ids[None]}, reduce="mean")
            bar.update(1)
        run.n_forwards += 1
        w = res.weights  # [layer, batch, query, key], head mean
        rows = run.P - 1 + torch.arange(run.T, device=w.device)
        run.engine_used = "capture"
        return w[:, 0, rows, :].float().mean(0)
