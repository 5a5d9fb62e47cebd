"""Model inputs as the gradient engine sees them: token ids, masks and per-row extras, plus which positions are
attributed (not padding, not appended by a continuation target)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class ModelInputs:
    input_ids: Tensor  # [batch, seq] long
    attention_mask: Tensor  # [batch, seq] long, 1 = token, 0 = padding
    extra: dict[str, Tensor] = field(default_factory=dict)  # per-row tensors [batch, seq, ...], e.g. token_type_ids
    attributed: Tensor | None = None  # [batch, seq] bool; None = attention_mask != 0
    source_index: Tensor | None = None  # [batch, orig_seq]: position in this (extended) sequence of each input position
    word_ids: list[list[int | None]] | None = None  # from a fast tokenizer's BatchEncoding, for .words()

    def __post_init__(self) -> None:
        if self.attributed is None:
            self.attributed = self.attention_mask != 0
        if self.source_index is None:
            b, n = self.input_ids.shape
            self.source_index = torch.arange(n, device=self.input_ids.device).expand(b, n)

    @property
    def batch(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def seq(self) -> int:
        return int(self.input_ids.shape[1])

    def forward_kwargs(self, rows: Tensor, input_ids: Tensor | None = None) -> dict[str, Tensor]:
        """Keyword arguments of ``model(...)`` for the examples ``rows`` ``[c]`` (repeats allowed)."""
        ids = self.input_ids if input_ids is None else input_ids
        kwargs = {"input_ids": ids[rows], "attention_mask": self.attention_mask[rows]}
        for name, value in self.extra.items():
            kwargs[name] = value[rows]
        return kwargs

    def to_original(self, x: Tensor) -> Tensor:
        """Gather ``x`` ``[batch, seq, ...]`` back to the input's positions ``[batch, orig_seq, ...]``."""
        idx = self.source_index
        while idx.dim() < x.dim():
            idx = idx.unsqueeze(-1)
        return torch.gather(x, 1, idx.expand(*idx.shape[:2], *x.shape[2:]))


def token_strings(tokenizer: object, ids: list[int]) -> list[str]:
    """The tokenizer's strings of ``ids`` (``convert_ids_to_tokens``), or the ids as strings without one."""
    if tokenizer is not None and hasattr(tokenizer, "convert_ids_to_tokens"):
        return list(tokenizer.convert_ids_to_tokens(ids))
    return [str(i) for i in ids]


def last_positions(attention_mask: Tensor) -> Tensor:
    """Index of the last non-padding position of each row ``[c]`` (works for left and right padding)."""
    n = attention_mask.shape[-1]
    return n - 1 - torch.flip(attention_mask != 0, dims=[-1]).int().argmax(dim=-1)


def prepare_inputs(inputs: object, device: torch.device) -> ModelInputs:
    """A BatchEncoding / dict with ``input_ids`` (+ ``attention_mask``, ``token_type_ids``, ...) or an ids tensor."""
    word_ids = None
    if isinstance(inputs, Tensor):
        data: dict[str, Tensor] = {"input_ids": inputs}
    elif isinstance(inputs, Mapping):
        if "input_ids" not in inputs:
            keys = ", ".join(map(str, inputs.keys())) or "none"
            raise ValueError(
                f"inputs has no 'input_ids' (keys: {keys}); pass what a tokenizer returns "
                "(tokenizer(texts, return_tensors='pt', padding=True)) or an input_ids tensor"
            )
        data = {}
        for key, value in inputs.items():
            if value is None:
                continue
            if not isinstance(value, Tensor):
                try:
                    value = torch.as_tensor(value)
                except (TypeError, ValueError) as err:
                    raise TypeError(
                        f"inputs[{key!r}] must be a tensor (use return_tensors='pt'), got {type(value).__name__}"
                    ) from err
            data[key] = value
        encodings = getattr(inputs, "encodings", None)
        if encodings:
            try:
                word_ids = [list(inputs.word_ids(i)) for i in range(len(encodings))]
            except (ValueError, AttributeError):
                word_ids = None
    else:
        raise TypeError(
            f"inputs must be a tokenizer's BatchEncoding, a dict with 'input_ids' or an input_ids tensor, "
            f"got {type(inputs).__name__}"
        )
    ids = data.pop("input_ids")
    if ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise TypeError(f"input_ids must be an integer tensor of token ids, got dtype {ids.dtype}")
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
        data = {k: (v.unsqueeze(0) if v.dim() >= 1 else v) for k, v in data.items()}
    if ids.dim() != 2 or ids.shape[1] == 0:
        raise ValueError(f"input_ids must be [batch, seq] with seq > 0, got shape {tuple(ids.shape)}")
    mask = data.pop("attention_mask", None)
    if mask is None:
        mask = torch.ones_like(ids)
    if tuple(mask.shape) != tuple(ids.shape):
        raise ValueError(f"attention_mask has shape {tuple(mask.shape)}, input_ids {tuple(ids.shape)}; they must match")
    extra = {}
    for key, value in data.items():
        if isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] == ids.shape[0]:
            extra[key] = value.to(device)
    if not bool((mask != 0).any(dim=1).all()):
        raise ValueError("every example needs at least one non-padding token (an attention_mask row is all zeros)")
    return ModelInputs(ids.to(device).long(), mask.to(device).long(), extra, word_ids=word_ids)


def extend_with_continuations(inputs: ModelInputs, continuations: list[list[int]], pad_id: int) -> ModelInputs:
    """Insert each example's continuation token ids right after its last non-padding token (teacher forcing).

    Padding after that token moves right; rows with shorter continuations get padding at the end. The appended
    positions are not attributed; ``source_index`` maps the input's positions into the extended sequence.
    """
    b, n = inputs.input_ids.shape
    c_max = max(len(c) for c in continuations)
    device = inputs.input_ids.device
    last = last_positions(inputs.attention_mask).tolist()
    ids = torch.full((b, n + c_max), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((b, n + c_max), dtype=torch.long, device=device)
    attributed = torch.zeros((b, n + c_max), dtype=torch.bool, device=device)
    source = torch.empty((b, n), dtype=torch.long, device=device)
    extra = {k: v.new_zeros((b, n + c_max, *v.shape[2:])) for k, v in inputs.extra.items()}
    for i in range(b):
        e, cont = last[i], continuations[i]
        keep = torch.arange(e + 1, device=device)
        tail = torch.arange(e + 1, n, device=device)
        new_tail = tail + len(cont)
        ids[i, : e + 1] = inputs.input_ids[i, : e + 1]
        ids[i, e + 1 : e + 1 + len(cont)] = torch.tensor(cont, dtype=torch.long, device=device)
        ids[i, new_tail] = inputs.input_ids[i, tail]
        mask[i, : e + 1] = inputs.attention_mask[i, : e + 1]
        mask[i, e + 1 : e + 1 + len(cont)] = 1
        mask[i, new_tail] = inputs.attention_mask[i, tail]
        attributed[i, : e + 1] = inputs.attributed[i, : e + 1]
        source[i, : e + 1] = keep
        source[i, e + 1 :] = new_tail
        for k, v in inputs.extra.items():
            extra[k][i, : e + 1] = v[i, : e + 1]
            if len(cont):
                # token_type_ids and the like: the continuation continues the last segment.
                extra[k][i, e + 1 : e + 1 + len(cont)] = v[i, e]
            extra[k][i, new_tail] = v[i, tail]
    return ModelInputs(ids, mask, extra, attributed=attributed, source_index=source, word_ids=inputs.word_ids)
