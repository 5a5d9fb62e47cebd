"""Gradient attribution of encoder-decoder models: to the source tokens and to the target prefix at once.

The attributed activations are the encoder's and the decoder's token embeddings, laid side by side as one
``[batch, source + target, hidden]`` tensor, so every gradient method (integrated gradients, smoothgrad...) runs on
it unchanged and its completeness delta covers both sides. The engine hooks the two embedding modules (one module
called twice when the model shares it, as T5 and Marian do: the encoder's call comes first in every forward).

The target reads the decoder's logits: its positions are the decoder's (the last non-padding target-prefix token
for ``NextToken``/``TokenId``; a ``Continuation`` is appended to the decoder's inputs, teacher-forced). Without
decoder inputs the decoder starts as ``generate`` does (the start token).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...adapters.seq2seq import decoder_embeddings, decoder_start_id, encoder_embeddings, is_encoder_decoder
from ...inputs import ModelInputs, token_strings
from ...results.attribution import AttributionResult
from ..targets import Target
from .engine import GradientEngine

__all__ = ["DecoderTarget", "SideBySide", "Seq2SeqEngine", "Seq2SeqFrame", "Seq2SeqInputs", "refuse_encoder_decoder"]


def refuse_encoder_decoder(model: nn.Module, method: str) -> None:
    """Methods that do not handle encoder-decoder models yet say so (naming the ones that do)."""
    if is_encoder_decoder(model):
        from ..catalog import names

        takers = ", ".join(n for n in names(family="gradient") if n != method)
        raise ValueError(
            f"method={method!r} does not support encoder-decoder models ({type(model).__name__}) yet; the gradient "
            f"methods do ({takers})"
        )


@dataclass
class Seq2SeqInputs(ModelInputs):
    """The encoder's inputs (``input_ids``, ``attention_mask``, ``extra``) with the decoder's (``decoder``).

    ``attributed`` and ``source_index`` cover the side-by-side frame ``[source ; target]`` of the attributed
    activations; the forward gets both sides' ids.
    """

    decoder: ModelInputs | None = None

    def forward_kwargs(self, rows: Tensor, input_ids: Tensor | None = None) -> dict[str, Tensor]:
        kwargs = super().forward_kwargs(rows, input_ids)
        kwargs["decoder_input_ids"] = self.decoder.input_ids[rows]
        kwargs["decoder_attention_mask"] = self.decoder.attention_mask[rows]
        return kwargs


class DecoderTarget(Target):
    """A target evaluated in the decoder's frame: its positions and masks are the decoder's."""

    def __init__(self, inner: Target) -> None:
        self.inner = inner
        self.name = inner.name
        self.decoder: ModelInputs | None = None

    def prepare(self, model, tokenizer):
        self.inner.prepare(model, tokenizer)

    def extend(self, inputs, tokenizer, model):
        self.decoder = self.inner.extend(inputs, tokenizer, model)
        return self.decoder

    def bind(self, outputs, inputs, model, tokenizer):
        self.inner.bind(outputs, self.decoder, model, tokenizer)

    def __call__(self, outputs, rows, attention_mask):
        return self.inner(outputs, rows, self.decoder.attention_mask[rows])

    def reads_last_position(self):
        return self.inner.reads_last_position()

    def describe(self):
        return self.inner.describe()


class SideBySide:
    """Hooks on the encoder's and the decoder's token embeddings: they record the two outputs side by side
    ``captured [batch, source + target, hidden]``, or, while ``override`` is set, replace them with its two parts
    (split after ``split`` source positions)."""

    def __init__(self, model: nn.Module, split: int) -> None:
        self.encoder, self.decoder = encoder_embeddings(model), decoder_embeddings(model)
        self.split = split
        self.override: Tensor | None = None
        self.captured: Tensor | None = None
        self._parts: list[Tensor] = []
        self._calls = 0

    def _hook(self, part: int | None, module: nn.Module, output: object) -> object:
        if part is None:  # one module for both sides: the encoder calls it first in every forward
            part = self._calls % 2
            self._calls += 1
        if not isinstance(output, Tensor):
            raise TypeError(f"the embeddings {type(module).__name__} return {type(output).__name__}; attribution "
                            "needs a tensor output")
        if self.override is None:
            self._parts = [output.detach()] if part == 0 else [*self._parts, output.detach()]
            if part == 1:
                self.captured = torch.cat(self._parts, dim=1)
            return output
        new = self.override[:, : self.split] if part == 0 else self.override[:, self.split:]
        if new.shape != output.shape:
            raise ValueError(f"activations of shape {tuple(new.shape)} do not match the output of the "
                             f"{'encoder' if part == 0 else 'decoder'} embeddings {tuple(output.shape)}")
        return new.to(output.dtype)

    @contextlib.contextmanager
    def installed(self, value: object = None) -> Iterator[object]:
        """The hooks for the scope (removed on exit, also on exceptions); yields ``value``."""
        self._calls = 0
        if self.encoder is self.decoder:
            handles = [self.encoder.register_forward_hook(lambda m, a, o: self._hook(None, m, o))]
        else:
            handles = [self.encoder.register_forward_hook(lambda m, a, o: self._hook(0, m, o)),
                       self.decoder.register_forward_hook(lambda m, a, o: self._hook(1, m, o))]
        try:
            yield value
        finally:
            for handle in handles:
                handle.remove()
            self.override = None
            self.captured = None
            self._parts = []


class Seq2SeqEngine(GradientEngine):
    """The gradient engine on the side-by-side activations ``[source ; target]`` of the two embedding layers."""

    def __init__(self, model: nn.Module, inputs: Seq2SeqInputs, target: Target) -> None:
        self.sides = SideBySide(model, inputs.seq)
        super().__init__(model, self.sides.encoder, inputs, target)

    # The engine's override and capture are the hooks'.
    _override = property(lambda self: self.sides.override, lambda self, v: setattr(self.sides, "override", v))
    _captured = property(lambda self: self.sides.captured, lambda self, v: setattr(self.sides, "captured", v))

    def installed(self):
        return self.sides.installed(self)


class Seq2SeqFrame:
    """What the gradient run does differently for an encoder-decoder model (``layer=`` not given)."""

    def __init__(self, model: nn.Module, baselines: object) -> None:
        if baselines is not None and not (isinstance(baselines, str) and baselines == "zero"):
            given = f"a tensor of shape {tuple(baselines.shape)}" if isinstance(baselines, Tensor) else repr(baselines)
            raise ValueError(
                f"baselines={given} is not supported for encoder-decoder models ({type(model).__name__}) yet: "
                "the baseline is the zero embedding on both sides (baselines=None or 'zero')"
            )
        self.model = model

    @classmethod
    def for_model(cls, model: nn.Module, layer: object, baselines: object) -> Seq2SeqFrame | None:
        """The frame of an encoder-decoder model, None for other models."""
        if not is_encoder_decoder(model):
            return None
        if layer is not None:
            raise ValueError(
                f"layer= is not supported for encoder-decoder models ({type(model).__name__}) yet: attribute "
                "attributes to the encoder's and the decoder's token embeddings together; drop layer="
            )
        return cls(model, baselines)

    def decoder_inputs(self, original: ModelInputs) -> ModelInputs:
        """The target prefix: ``decoder_input_ids`` given with the inputs, else the start token as in generate."""
        if "labels" in original.extra:
            raise ValueError("inputs hold labels: pass the target text as target= (a continuation, teacher-forced) "
                             "or the target prefix as decoder_input_ids")
        ids = original.extra.get("decoder_input_ids")
        if ids is None:
            start = decoder_start_id(self.model)
            ids = torch.full((original.batch, 1), start, dtype=torch.long, device=original.input_ids.device)
        mask = original.extra.get("decoder_attention_mask")
        return ModelInputs(ids.long(), torch.ones_like(ids) if mask is None else mask.long())

    def extend(self, original: ModelInputs, target: Target, tokenizer: object) -> tuple[Seq2SeqInputs, Target]:
        """The inputs of the run (a continuation target extends the decoder's side) and the decoder-side target."""
        self.decoder_original = self.decoder_inputs(original)
        tgt = DecoderTarget(target)
        decoder = tgt.extend(self.decoder_original, tokenizer, self.model)
        extra = {k: v for k, v in original.extra.items() if not k.startswith("decoder_")}
        s = original.seq
        attributed = torch.cat([original.attributed, decoder.attributed], dim=1)
        source = torch.cat([original.source_index, decoder.source_index + s], dim=1)
        prepared = Seq2SeqInputs(original.input_ids, original.attention_mask, extra, attributed=attributed,
                                 source_index=source, word_ids=original.word_ids, decoder=decoder)
        return prepared, tgt

    def engine(self, prepared: Seq2SeqInputs, target: Target) -> Seq2SeqEngine:
        return Seq2SeqEngine(self.model, prepared, target)

    def result(self, raw_extended: Tensor, prepared: Seq2SeqInputs, original: ModelInputs, tokenizer: object,
               method: str, tgt: Target, out) -> AttributionResult:
        """Source-side attributions as ``scores``/``raw``; the target prefix's as ``decoder_scores``/``decoder_raw``."""
        from .base import gradient_result  # base imports this module

        s = original.seq
        result = gradient_result(raw_extended[:, :s], original, original, tokenizer, method, tgt, out)
        dec = self.decoder_original
        dec_raw = prepared.decoder.to_original(raw_extended[:, s:])
        dec_raw = dec_raw * dec.attributed.unsqueeze(-1).to(dec_raw.dtype)
        result.decoder_raw, result.decoder_scores = dec_raw, dec_raw.sum(dim=-1)
        result.decoder_tokens = [token_strings(tokenizer, row.tolist()) for row in dec.input_ids]
        result.decoder_input_ids, result.decoder_attention_mask = dec.input_ids, dec.attention_mask
        return result
