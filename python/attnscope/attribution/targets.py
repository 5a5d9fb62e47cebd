"""What scalar of the model output is explained: the target vocabulary.

Every target maps the outputs of a chunk of rows (interpolation points of several examples) to one value per row,
``Tensor[c]``; ``rows[c]`` says which example each row belongs to, so per-example targets work in any chunking.

    Class(i)                 logit of class i (sequence classifiers)
    TokenId(t)               logit of token t at the last non-padding position (LMs)
    NextToken()              logit of the argmax token at the last non-padding position (default for LMs)
    Continuation("text")     sum of the teacher-forced log-softmax values of the continuation's tokens
    Contrast(a, b)           logit(a) - logit(b): tokens at the last position, or classes
    Similarity(ref)          cosine of the pooled, L2-normalised embedding and a reference (sentence encoders)
    a callable               outputs -> Tensor[c]

Plain ints mean a class for classifiers and a token id for LMs; a plain string means a continuation. A list gives
one target per example.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..inputs import ModelInputs, last_positions
from .prediction import class_name, token_text

__all__ = [
    "Class",
    "Continuation",
    "Contrast",
    "Custom",
    "NextToken",
    "Similarity",
    "Target",
    "TokenId",
    "resolve_target",
]


def _logits(outputs: object) -> Tensor:
    logits = getattr(outputs, "logits", None)
    if logits is None and isinstance(outputs, Tensor):
        logits = outputs
    if logits is None:
        raise ValueError(
            f"the model returns no logits ({type(outputs).__name__}); for a sentence encoder pass "
            "target=Similarity(reference), or any callable outputs -> Tensor[batch]"
        )
    return logits


def _per_row(values: Tensor, rows: Tensor) -> Tensor:
    return values.to(rows.device)[rows]


def token_id(token: int | str, tokenizer: object, what: str) -> int:
    """The id of ``token`` (an int id, or a single-token string with ``tokenizer``); ``what`` names it in errors."""
    if isinstance(token, bool):
        raise TypeError(f"{what} must be a token id or a token string, got {token!r}")
    if isinstance(token, int):
        return token
    if isinstance(token, str):
        if tokenizer is None:
            raise ValueError(f"{what}={token!r} is a string; pass tokenizer= to turn it into a token id, or pass the id")
        ids = tokenizer(token, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(f"{what}={token!r} is {len(ids)} tokens ({ids}); pass a single token or its id")
        return int(ids[0])
    raise TypeError(f"{what} must be a token id or a token string, got {type(token).__name__}")


def _as_index(value: int | Sequence[int] | Tensor, batch: int, what: str) -> Tensor:
    t = torch.as_tensor(value, dtype=torch.long).reshape(-1)
    if t.numel() == 1:
        return t.expand(batch).clone()
    if t.numel() != batch:
        raise ValueError(f"{what} has {t.numel()} entries for a batch of {batch}; pass one or one per example")
    return t


def _check_range(index: Tensor, size: int, what: str, unit: str) -> None:
    bad = (index < 0) | (index >= size)
    if bool(bad.any()):
        raise ValueError(f"{what} {index[bad][0].item()} out of range: the model has {size} {unit} (0..{size - 1})")


def _per_row_index(index: Tensor, i: int) -> Tensor:
    """Example ``i``'s entry of a target index that has one entry or one per example."""
    flat = index.reshape(-1)
    return flat[i] if flat.numel() > 1 else flat[0]


class Target:
    """Base class. ``bind`` sees the outputs on the real inputs once (to check ranges, fix argmax tokens)."""

    name = "target"

    def prepare(self, model: torch.nn.Module, tokenizer: object) -> None:
        """Before any method runs (outside every hook and capture): compute what needs a forward of its own."""

    def extend(self, inputs: ModelInputs, tokenizer: object, model: torch.nn.Module) -> ModelInputs:
        return inputs

    def bind(self, outputs: object, inputs: ModelInputs, model: torch.nn.Module, tokenizer: object) -> None:
        pass

    def __call__(self, outputs: object, rows: Tensor, attention_mask: Tensor) -> Tensor:
        raise NotImplementedError

    # True for targets that name tokens of a language model's vocabulary (TokenId, NextToken, Contrast, plain ints).
    selects_tokens = False

    def reads_last_position(self) -> bool:
        """After ``bind``: the value reads only the logits at each example's last non-padding position."""
        return False

    def token_ids(self) -> Tensor | None:
        """After ``bind``: the vocabulary ids the value reads, ``[batch or 1, 1]`` (a token) or ``[1, 2]`` (a
        contrast ``a - b``); None for other targets (classes, continuations, similarities, callables)."""
        return None

    def describe(self) -> str:
        return self.name

    def label(self, i: int, tokenizer: object, model: torch.nn.Module) -> str:
        """After ``bind``: example ``i``'s target as a user reads it (token text, class names), for the views."""
        return self.describe()


@dataclass
class Class(Target):
    """Logit of class ``index`` (an int or one per example)."""

    index: int | Sequence[int] | Tensor
    name = "class"

    def bind(self, outputs, inputs, model, tokenizer):
        logits = _logits(outputs)
        if logits.dim() != 2:
            raise ValueError(
                f"Class needs a classifier's logits [batch, classes], got shape {tuple(logits.shape)}; for a "
                "language model use TokenId(t) or NextToken()"
            )
        self._index = _as_index(self.index, inputs.batch, "target")
        _check_range(self._index, logits.shape[-1], "target class", "classes")

    def __call__(self, outputs, rows, attention_mask):
        logits = _logits(outputs)
        return logits.gather(1, _per_row(self._index, rows).unsqueeze(1)).squeeze(1)

    def describe(self):
        return f"Class({self._index.tolist() if self._index.numel() > 1 else int(self._index[0])})"

    def label(self, i, tokenizer, model):
        return class_name(model, int(_per_row_index(self._index, i)))


@dataclass
class TokenId(Target):
    """Logit of token ``token`` (an id, a single-token string, or one per example) at the last non-padding
    position."""

    token: int | str | Sequence[int] | Tensor
    name = "token_id"
    selects_tokens = True

    def token_ids(self):
        return self._index.view(-1, 1)

    def _resolve(self, inputs, tokenizer):
        tok = self.token
        if isinstance(tok, (str, int)) and not isinstance(tok, bool):
            tok = token_id(tok, tokenizer, "target token")
        elif isinstance(tok, Sequence) and not isinstance(tok, Tensor):
            tok = [token_id(t, tokenizer, "target token") for t in tok]
        return _as_index(tok, inputs.batch, "target")

    def bind(self, outputs, inputs, model, tokenizer):
        logits = _logits(outputs)
        if logits.dim() != 3:
            raise ValueError(
                f"TokenId needs a language model's logits [batch, seq, vocab], got shape {tuple(logits.shape)}; "
                "for a classifier use Class(i)"
            )
        self._index = self._resolve(inputs, tokenizer)
        _check_range(self._index, logits.shape[-1], "target token id", "tokens in its vocabulary")

    def __call__(self, outputs, rows, attention_mask):
        logits = _logits(outputs)
        pos = last_positions(attention_mask)
        at_last = logits[torch.arange(logits.shape[0], device=logits.device), pos]
        return at_last.gather(1, _per_row(self._index, rows).to(logits.device).unsqueeze(1)).squeeze(1)

    def reads_last_position(self):
        return True

    def describe(self):
        return f"TokenId({self._index.tolist() if self._index.numel() > 1 else int(self._index[0])})"

    def label(self, i, tokenizer, model):
        return f"token {token_text(tokenizer, int(_per_row_index(self._index, i)))}"


class NextToken(TokenId):
    """Logit of the model's own next-token prediction (argmax at the last non-padding position on the real input)."""

    name = "next_token"

    def __init__(self) -> None:
        super().__init__(token=0)

    def bind(self, outputs, inputs, model, tokenizer):
        logits = _logits(outputs)
        if logits.dim() != 3:
            raise ValueError(
                f"NextToken needs a language model's logits [batch, seq, vocab], got shape {tuple(logits.shape)}"
            )
        pos = last_positions(inputs.attention_mask)
        self._index = logits[torch.arange(inputs.batch), pos].argmax(-1).cpu()

    def describe(self):
        return f"NextToken({self._index.tolist()})"

    def label(self, i, tokenizer, model):
        return f"next token {token_text(tokenizer, int(_per_row_index(self._index, i)))}"

    def __repr__(self) -> str:
        return "NextToken()"


@dataclass
class Continuation(Target):
    """Sum over the continuation's tokens of their teacher-forced log-softmax values: log p(text | input).

    ``text`` is a string (tokenized without special tokens) or token ids, or one per example. The continuation is
    appended after each example's last non-padding token; its positions are not attributed.
    """

    text: str | Sequence[int] | Sequence[str] | Sequence[Sequence[int]]
    name = "continuation"

    def _token_lists(self, batch: int, tokenizer) -> list[list[int]]:
        text = self.text
        if isinstance(text, str) or (isinstance(text, Sequence) and text and isinstance(text[0], int)):
            items = [text] * batch
        else:
            items = list(text)
            if len(items) != batch:
                raise ValueError(f"Continuation has {len(items)} texts for a batch of {batch}; pass one or one per example")
        out = []
        for item in items:
            if isinstance(item, str):
                if tokenizer is None:
                    raise ValueError(
                        f"target Continuation({item!r}) needs tokenizer= to turn the text into tokens "
                        "(or pass the continuation's token ids)"
                    )
                ids = list(tokenizer(item, add_special_tokens=False)["input_ids"])
            else:
                ids = [int(t) for t in item]
            if not ids:
                raise ValueError(f"the continuation {item!r} has no tokens")
            out.append(ids)
        return out

    def extend(self, inputs, tokenizer, model):
        self._tokens = self._token_lists(inputs.batch, tokenizer)
        pad = getattr(getattr(model, "config", None), "pad_token_id", None)
        if pad is None and tokenizer is not None:
            pad = getattr(tokenizer, "pad_token_id", None)
        self._orig_last = last_positions(inputs.attention_mask).cpu()
        extended = extend_with_continuations(inputs, self._tokens, int(pad or 0))
        c_max = max(len(t) for t in self._tokens)
        # Row i predicts continuation token j at position last_i + j from the logits there.
        self._pos = torch.stack([self._orig_last + j for j in range(c_max)], dim=1)  # [batch, c_max]
        tok = torch.zeros((inputs.batch, c_max), dtype=torch.long)
        valid = torch.zeros((inputs.batch, c_max), dtype=torch.bool)
        for i, ids in enumerate(self._tokens):
            tok[i, : len(ids)] = torch.tensor(ids)
            valid[i, : len(ids)] = True
        self._tok, self._valid = tok, valid
        return extended

    def bind(self, outputs, inputs, model, tokenizer):
        logits = _logits(outputs)
        if logits.dim() != 3:
            raise ValueError(f"Continuation needs a language model's logits [batch, seq, vocab], got {tuple(logits.shape)}")
        _check_range(self._tok[self._valid], logits.shape[-1], "continuation token id", "tokens in its vocabulary")

    def __call__(self, outputs, rows, attention_mask):
        logits = _logits(outputs)
        dev = logits.device
        pos, tok, valid = (_per_row(t, rows).to(dev) for t in (self._pos, self._tok, self._valid))
        ar = torch.arange(logits.shape[0], device=dev).unsqueeze(1)
        picked = logits[ar, pos]  # [c, c_max, vocab]
        logp = torch.log_softmax(picked.float(), dim=-1).gather(2, tok.unsqueeze(-1)).squeeze(-1)
        return (logp * valid).sum(dim=1).to(logits.dtype)

    def describe(self):
        return f"Continuation({self.text!r})"

    def label(self, i, tokenizer, model):
        ids = getattr(self, "_tokens", None)
        if ids is None:
            return self.describe()
        ids = ids[i]
        text = repr(tokenizer.decode(ids)) if tokenizer is not None and hasattr(tokenizer, "decode") else str(ids)
        return f"continuation {text}"


@dataclass
class Contrast(Target):
    """``logit(a) - logit(b)``: two tokens at the last non-padding position (LMs) or two classes (classifiers)."""

    a: int | str
    b: int | str
    name = "contrast"
    selects_tokens = True

    def token_ids(self):
        return self._ab.view(1, 2) if getattr(self, "_lm", False) else None

    def bind(self, outputs, inputs, model, tokenizer):
        logits = _logits(outputs)
        self._lm = logits.dim() == 3
        unit = "tokens in its vocabulary" if self._lm else "classes"
        what = "contrast token" if self._lm else "contrast class"
        ia = token_id(self.a, tokenizer, "Contrast a") if self._lm else int(self.a)
        ib = token_id(self.b, tokenizer, "Contrast b") if self._lm else int(self.b)
        self._ab = torch.tensor([ia, ib])
        _check_range(self._ab, logits.shape[-1], what, unit)

    def __call__(self, outputs, rows, attention_mask):
        logits = _logits(outputs)
        if self._lm:
            logits = logits[torch.arange(logits.shape[0], device=logits.device), last_positions(attention_mask)]
        ia, ib = (int(v) for v in self._ab)
        return logits[:, ia] - logits[:, ib]

    def reads_last_position(self):
        return bool(getattr(self, "_lm", False))  # token contrasts read the last position; class contrasts are 2-D

    def describe(self):
        return f"Contrast({self.a!r}, {self.b!r})"

    def label(self, i, tokenizer, model):
        a, b = (int(v) for v in self._ab)
        if self._lm:
            return f"{token_text(tokenizer, a)} \u2212 {token_text(tokenizer, b)}"
        return f"{class_name(model, a)} \u2212 {class_name(model, b)}"


_POOLINGS = ("mean", "cls", "max", "lasttoken")


def pooling_from_config(model: torch.nn.Module) -> str | None:
    """The pooling of a sentence-transformers folder (``1_Pooling/config.json`` beside the weights), if any."""
    candidates = [getattr(model, "name_or_path", None), getattr(getattr(model, "config", None), "_name_or_path", None)]
    for root in candidates:
        if not root:
            continue
        for up in (root, os.path.dirname(os.path.normpath(root))):
            path = os.path.join(up, "1_Pooling", "config.json")
            if os.path.isfile(path):
                with open(path) as f:
                    cfg = json.load(f)
                for key, mode in (
                    ("pooling_mode_mean_tokens", "mean"),
                    ("pooling_mode_cls_token", "cls"),
                    ("pooling_mode_max_tokens", "max"),
                    ("pooling_mode_lasttoken", "lasttoken"),
                ):
                    if cfg.get(key):
                        return mode
    return None


def pool(hidden: Tensor, attention_mask: Tensor, mode: str) -> Tensor:
    """Sentence embedding ``[c, hidden]`` from token states ``[c, seq, hidden]`` (padding excluded)."""
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)
    if mode == "mean":
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).amax(1)
    if mode == "lasttoken":
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last_positions(attention_mask)]
    raise ValueError(f"unknown pooling {mode!r}; use one of {', '.join(_POOLINGS)}")


def _hidden(outputs: object) -> Tensor:
    h = getattr(outputs, "last_hidden_state", None)
    if h is None:
        h = outputs[0] if isinstance(outputs, (tuple, list)) else None
    if h is None or not isinstance(h, Tensor) or h.dim() != 3:
        raise ValueError(
            f"Similarity needs token states [batch, seq, hidden] (last_hidden_state); {type(outputs).__name__} has "
            "none: load the encoder with AutoModel, not a model with a head"
        )
    return h


@dataclass
class Similarity(Target):
    """Cosine between the pooled, L2-normalised sentence embedding and a reference.

    ``reference``: a text (or one per example; embedded by the same model, needs ``tokenizer=``) or a tensor
    ``[hidden]`` / ``[batch, hidden]``. ``pooling``: None reads the model's ``1_Pooling/config.json`` (mean when
    absent), or one of mean, cls, max, lasttoken.
    """

    reference: str | Sequence[str] | Tensor
    pooling: str | None = None
    name = "similarity"

    def prepare(self, model, tokenizer):
        self._mode = self.pooling or pooling_from_config(model) or "mean"
        if self._mode not in _POOLINGS:
            raise ValueError(f"unknown pooling {self._mode!r}; use one of {', '.join(_POOLINGS)}")
        ref = self.reference
        if isinstance(ref, str) or (isinstance(ref, Sequence) and not isinstance(ref, Tensor)):
            if tokenizer is None:
                raise ValueError("Similarity with a reference text needs tokenizer=; or pass a reference embedding tensor")
            texts = [ref] if isinstance(ref, str) else list(ref)
            device = next((p.device for p in model.parameters()), torch.device("cpu"))
            enc = tokenizer(texts, return_tensors="pt", padding=True).to(device)
            with torch.no_grad():
                ref_out = model(**enc)
            ref = pool(_hidden(ref_out), enc["attention_mask"], self._mode)
        self._ref_pooled, self._prepared_for = ref, id(model)

    def bind(self, outputs, inputs, model, tokenizer):
        hidden = _hidden(outputs)
        if getattr(self, "_prepared_for", None) != id(model):
            self.prepare(model, tokenizer)
        ref = self._ref_pooled
        ref = torch.as_tensor(ref).to(hidden.device, hidden.dtype)
        if ref.dim() == 1:
            ref = ref.unsqueeze(0)
        if ref.shape[-1] != hidden.shape[-1] or ref.shape[0] not in (1, inputs.batch):
            raise ValueError(
                f"Similarity reference has shape {tuple(ref.shape)}; pass [hidden={hidden.shape[-1]}] or "
                f"[batch={inputs.batch}, hidden]"
            )
        self._ref = F.normalize(ref.expand(inputs.batch, -1), dim=-1).detach()

    def __call__(self, outputs, rows, attention_mask):
        emb = F.normalize(pool(_hidden(outputs), attention_mask, self._mode), dim=-1)
        return (emb * _per_row(self._ref, rows)).sum(-1)

    def describe(self):
        ref = self.reference if isinstance(self.reference, (str, list)) else f"tensor{tuple(self.reference.shape)}"
        return f"Similarity({ref!r}, pooling={self._mode!r})"

    def label(self, i, tokenizer, model):
        ref = self.reference
        if isinstance(ref, str):
            return f"similarity to {ref!r}"
        if isinstance(ref, Sequence) and not isinstance(ref, Tensor):
            return f"similarity to {ref[i]!r}"
        return "similarity to a reference embedding"


@dataclass
class Custom(Target):
    """Any callable ``outputs -> Tensor[c]``: one value per row of the chunk it is given."""

    fn: Callable[[object], Tensor]
    name = "custom"

    def __call__(self, outputs, rows, attention_mask):
        value = self.fn(outputs)
        if not isinstance(value, Tensor) or value.dim() != 1 or value.shape[0] != rows.shape[0]:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"the target callable must return Tensor[batch={rows.shape[0]}], got {shape}")
        return value

    def describe(self):
        return f"Custom({getattr(self.fn, '__name__', repr(self.fn))})"


class _Resolved(Target):
    """A target decided on the first outputs: ``choose`` picks the concrete target, which does the rest."""

    name = "resolved"
    _inner: Target | None = None
    selects_tokens = True  # until bound: a plain int is a token for LMs

    def token_ids(self):
        return self._inner.token_ids() if self._inner is not None else None

    def choose(self, logits: Tensor) -> Target:
        raise NotImplementedError

    def bind(self, outputs, inputs, model, tokenizer):
        self._inner = self.choose(_logits(outputs))
        self._inner.bind(outputs, inputs, model, tokenizer)
        self.name = self._inner.name

    def __call__(self, outputs, rows, attention_mask):
        return self._inner(outputs, rows, attention_mask)

    def reads_last_position(self):
        return self._inner is not None and self._inner.reads_last_position()

    def describe(self):
        return self._inner.describe() if self._inner else self.unbound

    def label(self, i, tokenizer, model):
        return self._inner.label(i, tokenizer, model) if self._inner else self.unbound


class _Index(_Resolved):
    """A plain int (or list of ints): a class for classifiers, a token id for LMs, decided on the outputs."""

    name = "index"

    def __init__(self, index) -> None:
        self.index = index
        self.unbound = repr(index)

    def choose(self, logits):
        return Class(self.index) if logits.dim() == 2 else TokenId(self.index)


class _Default(_Resolved):
    """target=None: NextToken for language models, the predicted class for classifiers."""

    name = "default"
    unbound = "default"

    def choose(self, logits):
        return NextToken() if logits.dim() == 3 else Class(logits.argmax(-1).cpu())


def resolve_target(target: object) -> Target:
    """Turn the user's ``target=`` into a :class:`Target`."""
    if target is None:
        return _Default()
    if isinstance(target, Target):
        return target
    if isinstance(target, bool):
        raise TypeError("target must be an int, a string, a Target or a callable, got a bool")
    if isinstance(target, int):
        return _Index(target)
    if isinstance(target, str):
        return Continuation(target)
    if isinstance(target, Tensor) and not target.dtype.is_floating_point:
        return _Index(target.reshape(-1).tolist())
    if isinstance(target, Sequence) and target:
        if all(isinstance(t, int) and not isinstance(t, bool) for t in target):
            return _Index(list(target))
        if all(isinstance(t, str) for t in target):
            return Continuation(list(target))
        raise TypeError(
            "a list target must hold one int per example (classes or token ids) or one continuation string per "
            f"example, got {[type(t).__name__ for t in target]}"
        )
    if callable(target):
        return Custom(target)
    raise TypeError(
        f"target must be None, an int, a string, a list of those, an attnscope target (Class, TokenId, NextToken, "
        f"Continuation, Contrast, Similarity) or a callable outputs -> Tensor[batch], got {type(target).__name__}"
    )


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
