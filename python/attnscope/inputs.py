"""The one input normaliser: what users pass as model inputs, as :class:`ModelInputs`.

Capture, attribution, generation, head statistics and the data-set mode all read their inputs here:

* strings or a list of strings with ``tokenizer=`` (padded here on the tokenizer's side, with its pad token, else
  its EOS token: GPT-2 and Llama tokenizers have none, and the user's tokenizer object is never changed);
* a tokenizer's output (BatchEncoding or dict) with or without ``return_tensors`` (lists of ids, ragged lists
  are padded here);
* an ``input_ids`` tensor ``[batch, seq]`` or ``[seq]``.

Checks in one place: integer ids, a non-empty sequence, at least one token per row, a mask of the ids' shape, ids
inside the model's vocabulary (the message names the id and the vocabulary size: a tokenizer of another model is
the usual cause) and a length within the model's positions (the message names both lengths and how to truncate).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "ModelInputs",
    "last_positions",
    "max_positions",
    "model_device",
    "model_inputs",
    "token_sequences",
    "token_strings",
    "vocabulary_size",
]


@dataclass
class ModelInputs:
    """Token ids, masks and per-row extras, plus which positions are attributed (not padding, not appended by a
    continuation target) and, for capture, the tensors as the user gave them (``kwargs``)."""

    input_ids: Tensor  # [batch, seq] long
    attention_mask: Tensor  # [batch, seq] long, 1 = token, 0 = padding
    extra: dict[str, Tensor] = field(default_factory=dict)  # per-row tensors [batch, seq, ...], e.g. token_type_ids
    attributed: Tensor | None = None  # [batch, seq] bool; None = attention_mask != 0
    source_index: Tensor | None = None  # [batch, orig_seq]: position in this (extended) sequence of each input position
    word_ids: list[list[int | None]] | None = None  # from a fast tokenizer's BatchEncoding, for .words()
    kwargs: dict[str, Tensor] | None = None  # the given tensors, 2-D, as forward keyword arguments (capture)

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


# --- what the model allows ----------------------------------------------------------------------------------------
def vocabulary_size(model: nn.Module | None) -> int | None:
    """Rows of the input embeddings (the real bound of a token id), else ``config.vocab_size``."""
    if model is None:
        return None
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    weight = getattr(emb, "weight", None)
    if isinstance(weight, Tensor) and weight.dim() == 2:
        return int(weight.shape[0])
    value = getattr(getattr(model, "config", None), "vocab_size", None)
    return value if isinstance(value, int) and value > 0 else None


def max_positions(model: nn.Module | None, tokenizer: Any = None) -> int | None:
    """The longest sequence the model takes: its config's ``max_position_embeddings`` (``n_positions``...; RoBERTa's
    count without its padding offset), none for relative positions (T5), else the tokenizer's
    ``model_max_length``."""
    cfg = getattr(model, "config", None)
    if getattr(cfg, "relative_attention_num_buckets", None) is None:
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(cfg, name, None)
            if isinstance(value, int) and value > 0:
                pad = getattr(cfg, "pad_token_id", None)
                offset = pad + 1 if getattr(cfg, "model_type", "") in _OFFSET_POSITIONS and isinstance(pad, int) else 0
                return value - offset
    value = getattr(tokenizer, "model_max_length", None)
    return value if isinstance(value, int) and 0 < value < 10**9 else None


# RoBERTa-style embeddings number positions from pad_token_id + 1.
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "longformer")


def _check_ids(ids: Tensor, model: nn.Module | None, tokenizer: Any, what: str) -> None:
    vocab = vocabulary_size(model)
    if vocab is not None and ids.numel():
        bad = (ids < 0) | (ids >= vocab)
        if bool(bad.any()):
            token = int(ids[bad][0])
            hint = f"; the tokenizer has {len(tokenizer)} tokens: is it the model's own?" if tokenizer is not None and \
                hasattr(tokenizer, "__len__") and len(tokenizer) != vocab else ""
            raise ValueError(f"{what} holds token id {token}, outside the model's vocabulary of {vocab} tokens "
                             f"(0..{vocab - 1}){hint}")


def _check_length(n: int, model: nn.Module | None, tokenizer: Any, what: str) -> None:
    limit = max_positions(model, tokenizer) if model is not None else None
    if limit is not None and n > limit:
        raise ValueError(f"{what} has {n} tokens, more than the {limit} positions of {type(model).__name__}; "
                         f"truncate them (truncation=True keeps the first {limit} tokens, with a warning; or "
                         f"tokenizer(..., truncation=True, max_length={limit})) or pass shorter texts")


def _truncate(out: dict[str, Tensor], limit: int, model: nn.Module | None, what: str) -> dict[str, Tensor]:
    """``truncation=True``: each row keeps its first ``limit`` real tokens, padded on the side it was padded on;
    every per-position tensor (ids, mask, token types) is cut the same way. Warns how many rows were cut."""
    ids = out["input_ids"]
    mask = out.get("attention_mask", torch.ones_like(ids))
    real = [(row != 0).nonzero().flatten()[:limit] for row in mask]
    width = max(len(r) for r in real)
    left = bool((mask[:, 0] == 0).any()) and not bool((mask[:, -1] == 0).any())
    index = torch.zeros((ids.shape[0], width), dtype=torch.long)
    keep = torch.zeros((ids.shape[0], width), dtype=torch.bool)
    for i, r in enumerate(real):
        pad = (mask[i] == 0).nonzero().flatten()
        fill = int(pad[0]) if len(pad) else 0
        row = torch.full((width,), fill, dtype=torch.long)
        span = slice(width - len(r), width) if left else slice(0, len(r))
        row[span], keep[i, span] = r.cpu(), True
        index[i] = row
    cut = int(((mask != 0).sum(1) > limit).sum())
    warnings.warn(f"{what}: {cut} of {ids.shape[0]} examples are longer than the {limit} positions of "
                  f"{type(model).__name__}; truncation=True keeps their first {limit} tokens", stacklevel=4)
    result = {}
    for key, value in out.items():
        if value.dim() >= 2 and tuple(value.shape[:2]) == tuple(ids.shape):
            gather = index.to(value.device).view(*index.shape, *([1] * (value.dim() - 2))).expand(-1, -1, *value.shape[2:])
            value = value.gather(1, gather)
        result[key] = value
    result["attention_mask"] = keep.to(mask.device, mask.dtype) if "attention_mask" in out else keep.long()
    return result


# --- the normaliser -----------------------------------------------------------------------------------------------
def _pad_id(tokenizer: Any, model: nn.Module | None) -> int:
    for source in (tokenizer, getattr(model, "config", None)):
        for name in ("pad_token_id", "eos_token_id"):
            value = getattr(source, name, None) if source is not None else None
            if isinstance(value, list) and value:
                value = value[0]
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return 0


def _pad(rows: list[list[int]], pad_id: int, side: str) -> tuple[Tensor, Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        span = slice(width - len(r), width) if side == "left" else slice(0, len(r))
        ids[i, span] = torch.tensor(r, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def _is_texts(inputs: Any) -> bool:
    return isinstance(inputs, str) or (isinstance(inputs, Sequence) and not isinstance(inputs, (Tensor, Mapping))
                                       and len(inputs) > 0 and all(isinstance(t, str) for t in inputs))


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _all_ids(values: Sequence) -> bool:
    return all(_is_id(v) for v in values) or all(
        isinstance(r, Sequence) and not isinstance(r, str) and all(_is_id(v) for v in r) for r in values)


def _encode_texts(inputs: Any, tokenizer: Any, what: str) -> dict[str, Any]:
    if tokenizer is None:
        raise ValueError(f"{what} is text, so it needs tokenizer= (the model's tokenizer); or pass token ids or what "
                         "the tokenizer returns")
    texts = [inputs] if isinstance(inputs, str) else list(inputs)
    if not all(t.strip() for t in texts):
        bad = next(i for i, t in enumerate(texts) if not t.strip())
        raise ValueError(f"{what}[{bad}] is an empty string: give the text to explain")
    enc = tokenizer(texts)  # unpadded: padded below with a pad token even when the tokenizer has none
    rows = [list(r) for r in enc["input_ids"]]
    out: dict[str, Any] = {"input_ids": rows, "__encoding__": enc}
    for key in ("token_type_ids",):
        if key in enc:
            out[key] = [list(r) for r in enc[key]]
    return out


def _ragged(data: dict[str, Any], tokenizer: Any, model: nn.Module | None) -> dict[str, Tensor]:
    """Lists of ids (one list, or one per example, possibly ragged) as padded tensors."""
    ids = data["input_ids"]
    rows = [list(ids)] if ids and isinstance(ids[0], int) else [list(r) for r in ids]
    if not rows or not all(rows):
        raise ValueError("input_ids holds an empty sequence: every example needs at least one token")
    side = getattr(tokenizer, "padding_side", "right")
    pad_id = _pad_id(tokenizer, model)
    padded, mask = _pad(rows, pad_id, side)
    out = {"input_ids": padded, "attention_mask": mask}
    given_mask = data.get("attention_mask")
    if given_mask is not None and not isinstance(given_mask, Tensor):
        gm = [list(given_mask)] if given_mask and isinstance(given_mask[0], int) else [list(r) for r in given_mask]
        out["attention_mask"] = _pad(gm, 0, side)[0] * mask if [len(r) for r in gm] == [len(r) for r in rows] \
            else mask
    for key, value in data.items():
        if key in ("input_ids", "attention_mask", "__encoding__") or isinstance(value, Tensor):
            continue
        vals = [list(value)] if value and isinstance(value[0], int) else [list(r) for r in value]
        if [len(r) for r in vals] == [len(r) for r in rows]:
            out[key] = _pad(vals, 0, side)[0]
    return out


def model_inputs(inputs: Any, *, tokenizer: Any = None, model: nn.Module | None = None,
                 device: torch.device | str | None = None, what: str = "inputs",
                 truncation: bool = False) -> ModelInputs:
    """What the user passed, as :class:`ModelInputs` on ``device`` (checked against ``model`` when given).

    ``what`` names the argument in errors (``inputs``, ``texts``, ``prompt``). Inputs longer than the model's
    positions raise a ValueError naming both lengths; ``truncation=True`` keeps each example's first tokens instead,
    with a warning.
    """
    if isinstance(inputs, ModelInputs):
        return inputs
    word_ids = None
    encoding = None
    if _is_texts(inputs):
        inputs = _encode_texts(inputs, tokenizer, what)
        encoding = inputs.pop("__encoding__")
    if isinstance(inputs, Tensor):
        data: dict[str, Any] = {"input_ids": inputs}
    elif isinstance(inputs, Mapping):
        if "input_ids" not in inputs:
            keys = ", ".join(map(str, inputs.keys())) or "none"
            raise ValueError(
                f"{what} has no 'input_ids' (keys: {keys}); pass what a tokenizer returns "
                "(tokenizer(texts, return_tensors='pt', padding=True)), an input_ids tensor, or strings with tokenizer="
            )
        data = {k: v for k, v in inputs.items() if v is not None}
        encoding = encoding if encoding is not None else inputs
    elif isinstance(inputs, Sequence) and not isinstance(inputs, str) and len(inputs) == 0:
        raise ValueError(f"{what} is empty: pass at least one text or sequence of token ids")
    elif isinstance(inputs, Sequence) and not isinstance(inputs, str) and _all_ids(inputs):
        data = {"input_ids": list(inputs)}  # token ids: one list, or one list per example
    else:
        raise TypeError(
            f"{what} must be a string or a list of strings (with tokenizer=), a tokenizer's BatchEncoding, a dict "
            f"with 'input_ids' or an input_ids tensor, got {type(inputs).__name__}"
        )
    if isinstance(data["input_ids"], (list, tuple)):
        data = {**data, **_ragged(data, tokenizer, model)}
    out: dict[str, Tensor] = {}
    for key, value in data.items():
        if not isinstance(value, Tensor):
            try:
                value = torch.as_tensor(value)
            except (TypeError, ValueError, RuntimeError) as err:
                raise TypeError(f"{what}[{key!r}] must be a tensor (use return_tensors='pt'), got "
                                f"{type(value).__name__}") from err
        out[key] = value
    ids = out["input_ids"]
    if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.is_complex():
        raise TypeError(f"input_ids must be an integer tensor of token ids, got dtype {ids.dtype}")
    if ids.dim() == 1:
        out = {k: (v.unsqueeze(0) if v.dim() >= 1 else v) for k, v in out.items()}
        ids = out["input_ids"]
    if ids.dim() != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"input_ids must be [batch, seq] with batch > 0 and seq > 0, got shape {tuple(ids.shape)}")
    if not isinstance(truncation, bool):
        raise TypeError(f"truncation must be True or False, got {truncation!r}")
    limit = max_positions(model, tokenizer) if truncation and model is not None else None
    if limit is not None and ids.shape[1] > limit:
        out = _truncate(out, limit, model, what)
        ids = out["input_ids"]
    kwargs = dict(out)
    mask = out.pop("attention_mask", None)
    if mask is None:
        mask = torch.ones_like(ids)
    if tuple(mask.shape) != tuple(ids.shape):
        raise ValueError(f"attention_mask has shape {tuple(mask.shape)}, input_ids {tuple(ids.shape)}; they must match")
    if not bool((mask != 0).any(dim=1).all()):
        raise ValueError("every example needs at least one non-padding token (an attention_mask row is all zeros)")
    _check_ids(ids, model, tokenizer, what)
    _check_length(int(ids.shape[1]), model, tokenizer, what)
    extra = {}
    for key, value in out.items():
        if key != "input_ids" and value.dim() >= 1 and value.shape[0] == ids.shape[0]:
            extra[key] = value.to(device) if device is not None else value
    if getattr(encoding, "encodings", None):
        try:
            word_ids = [list(encoding.word_ids(i)) for i in range(len(encoding.encodings))]
        except (ValueError, AttributeError):
            word_ids = None
        if word_ids is not None and any(len(w) != ids.shape[1] for w in word_ids):
            word_ids = _align_word_ids(word_ids, mask)
    move = (lambda t: t.to(device)) if device is not None else (lambda t: t)
    return ModelInputs(move(ids).long(), move(mask).long(), extra, word_ids=word_ids,
                       kwargs={k: move(v) for k, v in kwargs.items()})


def _align_word_ids(word_ids: list[list[int | None]], mask: Tensor) -> list[list[int | None]]:
    """Word ids of unpadded encodings placed at their tokens' positions in the padded rows."""
    out = []
    for w, m in zip(word_ids, mask.tolist()):
        row: list[int | None] = [None] * len(m)
        positions = [i for i, v in enumerate(m) if v]
        for p, value in zip(positions, w):
            row[p] = value
        out.append(row)
    return out


def token_sequences(texts: Any, *, tokenizer: Any = None, model: nn.Module | None = None, what: str = "texts",
                    max_length: int | None = None) -> tuple[list[list[int]], int]:
    """One unpadded list of token ids per text (strings, an ids tensor or a tokenizer's output with its mask), for
    callers that batch by themselves, and how many were truncated: texts longer than ``max_length`` (default the
    model's :func:`max_positions`) keep their first tokens, with a warning."""
    if isinstance(texts, Sequence) and not isinstance(texts, (str, Tensor, Mapping)):
        if len(texts) == 0:
            raise ValueError(f"{what} is empty: pass at least one text")
        if not all(isinstance(t, str) for t in texts):
            raise TypeError(f"{what} must be a list of strings, an input_ids tensor [n, seq] or a tokenizer's "
                            f"output, got a list of {sorted({type(t).__name__ for t in texts})}")
    enc = model_inputs(texts, tokenizer=tokenizer, what=what)  # the length is handled here, by truncation
    _check_ids(enc.input_ids, model, tokenizer, what)
    seqs = [row[m.bool()].tolist() for row, m in zip(enc.input_ids, enc.attention_mask)]
    limit = max_length or max_positions(model, tokenizer)
    cut = sum(len(s) > limit for s in seqs) if limit is not None else 0
    if cut:
        warnings.warn(f"{cut} of {len(seqs)} {what} are longer than the model's maximum of {limit} tokens (longest: "
                      f"{max(len(s) for s in seqs)}); only their first {limit} tokens are used", UserWarning,
                      stacklevel=3)
        seqs = [s[:limit] for s in seqs]
    return seqs, cut


# --- helpers of the callers ---------------------------------------------------------------------------------------
def model_device(model: nn.Module) -> torch.device:
    """Where the model's inputs go: the input embedding's device (under accelerate's ``device_map``, its hook's
    execution device, also when the embedding's weights are offloaded), else the first parameter not on the meta
    device; the CPU for a model without parameters.

    Raises ``ValueError`` for a model whose weights are on the meta device (shapes without data) and that has no
    ``hf_device_map`` (accelerate's offloading, which loads them for each forward): its results would be meta tensors.
    """
    try:
        embedding = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    except NotImplementedError:
        embedding = None
    if isinstance(embedding, nn.Module):
        device = getattr(getattr(embedding, "_hf_hook", None), "execution_device", None)
        if device is not None:
            return torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
        weight = getattr(embedding, "weight", None)
        if isinstance(weight, Tensor) and weight.device.type != "meta":
            return weight.device
    devices = [p.device for p in model.parameters()]
    if not devices:
        return torch.device("cpu")
    device = next((d for d in devices if d.type != "meta"), None)
    if device is None and getattr(model, "hf_device_map", None) is None:
        raise ValueError(
            f"{type(model).__name__}'s weights are on the meta device (shapes without values, e.g. built under "
            "init_empty_weights() or torch.device('meta')): every result would be an empty meta tensor. Load the "
            "weights first (from_pretrained, or model.to_empty(device='cpu') then load_state_dict)"
        )
    return device if device is not None else torch.device("cpu")


def token_strings(tokenizer: object, ids: list[int]) -> list[str]:
    """The tokenizer's strings of ``ids`` (``convert_ids_to_tokens``), or the ids as strings without one."""
    if tokenizer is not None and hasattr(tokenizer, "convert_ids_to_tokens"):
        return list(tokenizer.convert_ids_to_tokens(ids))
    return [str(i) for i in ids]


def last_positions(attention_mask: Tensor) -> Tensor:
    """Index of the last non-padding position of each row ``[c]`` (works for left and right padding)."""
    n = attention_mask.shape[-1]
    return n - 1 - torch.flip(attention_mask != 0, dims=[-1]).int().argmax(dim=-1)
