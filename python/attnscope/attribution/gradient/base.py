"""The gradient family's shared run: prepare the target, hook the attributed layer, capture the input activations,
size the chunks, let the method compute, and return an AttributionResult.

Every gradient method returns activations-shaped attributions ``raw`` ``[batch, seq, hidden]`` (in the engine's
frame), the completeness ``delta`` ``[batch]`` where the method has one, and the gradient evaluations per example.
Points are laid out and reduced chunk by chunk; nothing of size ``n_steps * batch * seq * hidden`` is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ...adapters import resolve_layer
from ...results.attribution import AttributionResult
from ..base import AttributionMethod, Request
from ..baselines import resolve_baselines
from ..chunking import check_budget, choose_chunk
from ...inputs import ModelInputs, token_strings
from ..prediction import predict
from ..scope import scoped_model
from .engine import GradientEngine
from .seq2seq import Seq2SeqFrame

__all__ = ["GradientMethod", "MethodOutput", "acc_dtype", "gradient_result"]


@dataclass
class MethodOutput:
    raw: Tensor  # [batch, seq, hidden]
    delta: Tensor | None  # [batch]
    n_steps_used: Tensor  # [batch] long: gradient evaluations per example
    f_input: Tensor | None = None  # [batch]
    f_baseline: Tensor | None = None  # [batch]


@dataclass
class GradientInputs:
    """What a gradient method computes from: the engine (hooked, chunk set), the input activations ``x``
    ``[batch, seq, hidden]``, the target at the input ``f_input`` ``[batch]``, and its baselines on request."""

    engine: GradientEngine
    x: Tensor
    f_input: Tensor
    seed: int
    baselines: Callable[[bool], Tensor]  # distribution=False: [batch, seq, hidden]; True: [n, seq, hidden]

    @property
    def rows(self) -> Tensor:
        return torch.arange(self.engine.inputs.batch, device=self.engine.inputs.input_ids.device)


def acc_dtype(x: Tensor) -> torch.dtype:
    """Accumulation dtype: float32 for half-precision activations, else theirs."""
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def evaluations(batch: int, n: int) -> Tensor:
    """``[batch]`` long: ``n`` gradient evaluations per example."""
    return torch.full((batch,), n, dtype=torch.long)


class GradientMethod(AttributionMethod):
    """A method computed by :class:`GradientEngine`: subclasses give :meth:`points` and :meth:`compute`."""

    def points(self, batch: int) -> int:
        """Rows (points) the method runs through the engine for ``batch`` examples (sizes the chunks)."""
        return batch

    def compute(self, data: GradientInputs) -> MethodOutput:
        raise NotImplementedError

    @staticmethod
    def at_input(data: GradientInputs, transform: Callable[[Tensor, Tensor], Tensor]) -> MethodOutput:
        """One gradient per example, at the input: ``raw = transform(x, dF/dx)``."""
        x, rows = data.x, data.rows
        raw = torch.zeros(x.shape, dtype=acc_dtype(x), device=x.device)

        def consume(s, e, r, g, v):
            raw[s:e] = transform(x[s:e], g)

        data.engine.run(x.shape[0], lambda s, e: (x[s:e], rows[s:e]), consume)
        return MethodOutput(raw, None, evaluations(x.shape[0], 1))

    def run(self, request: Request) -> AttributionResult:
        model, tokenizer, tgt = request.model, request.tokenizer, request.target
        original = request.inputs
        check_budget(request.memory_budget, model, original.seq, 0)  # before any forward (logits counted later)
        layer_option = getattr(self.options, "layer", None)
        # Encoder-decoder models: both embedding layers side by side, the target on the decoder's side.
        frame = Seq2SeqFrame.for_model(model, layer_option, request.baselines)
        layer = None if frame else resolve_layer(model, layer_option)
        with scoped_model(model):
            if frame:
                prepared, tgt = frame.extend(original, tgt, tokenizer)
                engine = frame.engine(prepared, tgt)
            else:
                prepared = tgt.extend(original, tokenizer, model)
                engine = GradientEngine(model, layer, prepared, tgt)
            engine.progress = request.progress
            with engine.installed():
                x, outputs = engine.capture()
                tgt.bind(outputs, prepared, model, tokenizer)
                if not frame:
                    request.prediction = predict(outputs, prepared, tokenizer, model)
                rows = torch.arange(prepared.batch, device=request.device)
                with torch.no_grad():
                    f_input = tgt(outputs, rows, prepared.attention_mask).detach()
                logits = getattr(outputs, "logits", None)
                vocab = int(logits.shape[-1]) if isinstance(logits, Tensor) and logits.dim() == 3 else 0
                del outputs, logits
                engine.chunk = choose_chunk(request.internal_batch_size, request.memory_budget, model, x.shape[1],
                                            vocab, self.points(prepared.batch))

                def baselines(distribution: bool) -> Tensor:
                    return resolve_baselines(
                        request.baselines, inputs=prepared, x=x, orig_len=original.seq,
                        capture=lambda ids: engine.capture(ids)[0], tokenizer=tokenizer, model=model,
                        distribution=distribution,
                    )

                out = self.compute(GradientInputs(engine, x, f_input, request.seed, baselines))
        return (frame.result if frame else gradient_result)(out.raw, prepared, original, tokenizer, self.name, tgt, out)


def gradient_result(raw_extended: Tensor, prepared: ModelInputs, original: ModelInputs, tokenizer: object,
                    method: str, tgt, out: MethodOutput) -> AttributionResult:
    """The result in the input's frame: positions a continuation target appended are dropped, padding gets 0."""
    raw = prepared.to_original(raw_extended)
    raw = raw * original.attributed.unsqueeze(-1).to(raw.dtype)  # padding never receives attribution
    ids = original.input_ids
    tokens = [token_strings(tokenizer, row.tolist()) for row in ids]
    return AttributionResult(
        scores=raw.sum(dim=-1),
        raw=raw,
        tokens=tokens,
        input_ids=ids,
        attention_mask=original.attention_mask,
        method=method,
        target=tgt.describe(),
        delta=out.delta,
        n_steps_used=out.n_steps_used,
        f_input=out.f_input,
        f_baseline=out.f_baseline,
        word_ids=original.word_ids,
    )
