"""Generation attribution of encoder-decoder models: one teacher-forced pass over source and target prefix.

The run's sequence is ``source + [decoder start] + generated``: its "prompt" is the source and the start token
(``P = S + 1``), so the decoder-only machinery (step ``t`` read at position ``P + t - 1``, which is decoder
position ``t``; chunks cut after a step's position) holds as it is. The activations are the encoder's and the
decoder's token embeddings side by side; each forward runs the model on the source and the decoder's prefix with
its embedding outputs replaced (:class:`~attnscope.attribution.gradient.seq2seq.SideBySide`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...capturing.forward import capture_forward
from ..gradient.seq2seq import SideBySide
from .run import GenerationRun
from .step_target import StepTarget

__all__ = ["Seq2SeqGenerationRun", "cross_and_decoder_attention"]


class Seq2SeqGenerationRun(GenerationRun):
    """A :class:`GenerationRun` whose columns are the source, the decoder's start token and the generated tokens."""

    def __init__(self, model: nn.Module, source_ids: list[int], start_ids: list[int], generated: list[int],
                 target: StepTarget, device: torch.device, **kwargs) -> None:
        self.S = len(source_ids)
        self.sides = SideBySide(model, self.S)
        super().__init__(model, self.sides.encoder, source_ids + start_ids, generated, target, device, **kwargs)
        with torch.no_grad():
            self.x = torch.cat([self.sides.encoder(self.ids[None, : self.S]),
                                self.sides.decoder(self.ids[None, self.S:])], dim=1)[0].detach()  # [N, H]

    def _logits(self, inputs_embeds: Tensor, keep: int) -> Tensor:
        """Logits ``[rows, keep, vocab]`` of the last ``keep`` decoder positions at activations
        ``[rows, S + decoder prefix, H]``."""
        rows, length = inputs_embeds.shape[0], inputs_embeds.shape[1] - self.S
        source = self.ids[None, : self.S].expand(rows, -1)
        decoder = self.ids[None, self.S : self.S + length].expand(rows, -1)
        with self.sides.installed():
            self.sides.override = inputs_embeds
            out = self.model(input_ids=source, attention_mask=torch.ones_like(source), decoder_input_ids=decoder,
                             use_cache=False)
        self.n_forwards += rows
        return out.logits[:, -keep:]

    def _occluded_values(self, ids: Tensor, s0: int, reuse: bool) -> Tensor:
        """Values of the steps that ``ids`` (tokens before ``s0`` unchanged) can change, from full forwards."""
        c = ids.shape[0]
        t_first = max(0, s0 - self.P + 1)
        source = ids[:, : self.S]
        out = self.model(input_ids=source, attention_mask=torch.ones_like(source), decoder_input_ids=ids[:, self.S:],
                         use_cache=False)
        self.n_forwards += c
        steps = torch.arange(t_first, self.T, device=self.device)
        return self.target(out.logits[:, steps], steps.expand(c, -1), self.tokens[steps].expand(c, -1))


def cross_and_decoder_attention(run: Seq2SeqGenerationRun) -> Tensor:
    """``[T, N]``: row ``t`` is the head- and layer-mean cross attention of decoder position ``t`` over the source,
    then its decoder self-attention over the target prefix (each part sums to 1)."""
    source = run.ids[None, : run.S]
    kwargs = {"input_ids": source, "attention_mask": torch.ones_like(source), "decoder_input_ids": run.ids[None, run.S:]}
    res, _ = capture_forward(run.model, kwargs, reduce="mean")
    run.n_forwards += 1
    rows = torch.arange(run.T, device=res.cross.weights.device)
    cross = res.cross.weights[:, 0, rows].float().mean(0)  # [T, S]
    decoder = res.decoder.weights[:, 0, rows].float().mean(0)  # [T, T + 1]
    return torch.cat([cross, decoder], dim=1)
