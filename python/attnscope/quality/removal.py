"""Target values of inputs with some features removed: the one place where faithfulness metrics call the model.

Two ways to remove a feature:

* ``removal="replace"`` (default): its tokens are replaced by one replacement token (like occlusion). This runs on
  the perturbation engine of the attribution methods: distinct rows evaluated once, chunks sized to the memory
  budget, and for causal LMs whose target reads the last position the KV cache of the unchanged prefix is reused.
* ``removal="delete"``: its tokens are deleted and the sequence closes up (ERASER, ferret). With ``roundtrip=True``
  the kept tokens are decoded to text and tokenised again, as ferret does (its default ``remove_tokens=True``). Rows
  are padded on the right (exact for encoders through the mask, and for causal models, whose real tokens never see
  right padding); distinct rows run once.

The value of a row is the target's ``score``: ``"prob"`` (softmax of the logits, then the target: ferret's class
probability), ``"logprob"`` or ``"target"`` (the target as attribution used it, e.g. a logit).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..attribution.chunking import PERTURBATION_MAX_TOKENS, choose_chunk
from ..attribution.perturbation.engine import PerturbationEngine
from ..attribution.targets import Target
from ..inputs import ModelInputs

__all__ = ["KV_MIN_SAVING", "REMOVALS", "SCORES", "Remover", "ScoredTarget", "prefix_saving"]

REMOVALS = ("replace", "delete")
# With kv_reuse=None, the prefix cache is reused when it skips at least this share of the positions on average:
# AOPC, deletion and sufficiency rows change an early token as soon as the rationale holds one, and a cached
# forward of a short suffix costs more per position than a full forward (measured: bench/results/quality.md).
KV_MIN_SAVING = 0.5
SCORES = ("prob", "logprob", "target")


class ScoredTarget(Target):
    """``inner`` read on the softmax (``prob``) or log-softmax (``logprob``) of the logits, or as it is."""

    def __init__(self, inner: Target, score: str) -> None:
        self.inner, self.score = inner, score
        self.name = inner.name

    def prepare(self, model, tokenizer):
        self.inner.prepare(model, tokenizer)

    def extend(self, inputs, tokenizer, model):
        return self.inner.extend(inputs, tokenizer, model)

    def bind(self, outputs, inputs, model, tokenizer):
        self.inner.bind(outputs, inputs, model, tokenizer)

    def __call__(self, outputs, rows, attention_mask):
        if self.score == "target":
            return self.inner(outputs, rows, attention_mask)
        logits = getattr(outputs, "logits", None)
        if logits is None:
            raise ValueError(f"score={self.score!r} needs a model with logits; {type(outputs).__name__} has none: pass "
                             "score='target' to use the target's own value")
        logits = logits.float()
        probs = logits.log_softmax(-1) if self.score == "logprob" else logits.softmax(-1)
        return self.inner(probs, rows, attention_mask)

    def reads_last_position(self):
        return self.inner.reads_last_position()

    def describe(self):
        return self.inner.describe()


def prefix_saving(features: Tensor, coalitions: list[Tensor]) -> float:
    """Mean share of positions before the first removed token, over every coalition row (1 for a full row):
    what prefix KV reuse would skip. ``features`` ``[batch, seq]`` (-1 = fixed)."""
    shares = []
    for i, present in enumerate(coalitions):
        f = features[i].cpu()
        n = int(f.numel())
        start = torch.full((int(f.max()) + 1,), n, dtype=torch.long)
        pos = (f >= 0).nonzero().flatten()
        start.scatter_reduce_(0, f[pos], pos, reduce="amin")  # first position of every feature
        first = torch.where(~present.cpu().bool(), start.unsqueeze(0), torch.full_like(start, n).unsqueeze(0))
        shares.append(first.min(1).values.double() / n)
    return float(torch.cat(shares).mean()) if shares else 0.0


class Remover:
    """Evaluates coalitions ``present [m, n_features]`` of every example (features absent are removed)."""

    def __init__(self, model: nn.Module, inputs: ModelInputs, target: Target, features: Tensor, *, removal: str,
                 replacement: int, tokenizer: object, roundtrip: bool, internal_batch_size: int | str,
                 memory_budget: int | None, kv_reuse: bool | None, progress: bool | None) -> None:
        self.model, self.inputs, self.target, self.tokenizer = model, inputs, target, tokenizer
        self.features = features.cpu()  # [batch, seq], -1 = fixed (always kept)
        self.removal, self.roundtrip = removal, roundtrip
        self.engine = PerturbationEngine(model, inputs, target, features, replacement, chunk=1, kv_reuse=kv_reuse,
                                         progress=progress, tokenizer=tokenizer)
        self.chunk = choose_chunk(internal_batch_size, memory_budget, model, inputs.seq, self.engine.vocab, None,
                                  max_tokens=PERTURBATION_MAX_TOKENS)
        self.engine.chunk = self.chunk
        self.f_input = self.engine.f_input  # [batch] float64
        self.kv_reuse = self.engine.kv_reuse if removal == "replace" else False
        self.replacement = replacement
        self._deleted_forwards = torch.zeros(inputs.batch, dtype=torch.long)

    @property
    def forwards(self) -> Tensor:
        """Model rows run per example (the input's own forward included)."""
        return self.engine.forwards + self._deleted_forwards

    def evaluate(self, coalitions: list[Tensor]) -> list[Tensor]:
        """``[m_i]`` float64 target values of the coalitions ``[m_i, n_i]`` of every example ``i``."""
        if self.removal == "replace":
            return self.engine.evaluate(coalitions)
        return self._delete(coalitions)

    # --- deletion ------------------------------------------------------------------------------------------------
    def _kept_rows(self, i: int, present: Tensor) -> tuple[list[tuple[int, ...]], Tensor]:
        kept = self.engine.token_present(i, present)  # [m, seq] bool
        ids = self.inputs.input_ids[i].cpu()
        rows = [tuple(ids[k].tolist()) for k in kept]
        if not self.roundtrip:
            positions = [tuple(k.nonzero().flatten().tolist()) for k in kept]
            return positions, kept
        added = set(self.tokenizer("")["input_ids"])  # the special tokens encoding adds
        texts = [self.tokenizer.decode([t for t in row if t not in added]) for row in rows]
        return [tuple(ids) for ids in self.tokenizer(texts)["input_ids"]], kept

    def _delete(self, coalitions: list[Tensor]) -> list[Tensor]:
        if len(coalitions) != self.inputs.batch:
            raise ValueError(f"{len(coalitions)} coalition sets for a batch of {self.inputs.batch}")
        if self.roundtrip and self.tokenizer is None:
            raise ValueError("roundtrip=True decodes and re-tokenises the kept tokens: pass tokenizer=")
        keys: list[tuple[int, tuple[int, ...]]] = []
        index: dict[tuple[int, tuple[int, ...]], int] = {}
        inverse = []
        for i, present in enumerate(coalitions):
            rows, _ = self._kept_rows(i, present)
            inv = []
            for row in rows:
                key = (i, row)
                if key not in index:
                    index[key] = len(keys)
                    keys.append(key)
                inv.append(index[key])
            inverse.append(torch.tensor(inv, dtype=torch.long))
        values = torch.empty(len(keys), dtype=torch.float64)
        for start in range(0, len(keys), self.chunk):
            part = keys[start:start + self.chunk]
            kwargs, rows = self._batch(part)
            with torch.no_grad():
                outputs = self.model(**kwargs)
                values[start:start + len(part)] = self.target(outputs, rows, kwargs["attention_mask"]).double().cpu()
            for i, _ in part:
                self._deleted_forwards[i] += 1
        return [values[inv] for inv in inverse]

    def _batch(self, part: list[tuple[int, tuple[int, ...]]]) -> tuple[dict[str, Tensor], Tensor]:
        """Right-padded forward arguments of deleted rows (positions kept, or re-tokenised ids)."""
        device = self.inputs.input_ids.device
        width = max(1, max(len(row) for _, row in part))
        c = len(part)
        ids = torch.zeros((c, width), dtype=torch.long)
        mask = torch.zeros((c, width), dtype=torch.long)
        extra = {name: torch.zeros((c, width, *v.shape[2:]), dtype=v.dtype) for name, v in self.inputs.extra.items()
                 if v.dim() >= 2 and v.shape[1] == self.inputs.seq}
        for r, (i, row) in enumerate(part):
            n = len(row)
            if self.roundtrip:
                ids[r, :n] = torch.tensor(row, dtype=torch.long)
            else:
                pos = torch.tensor(row, dtype=torch.long)
                ids[r, :n] = self.inputs.input_ids[i].cpu()[pos]
                for name in extra:
                    extra[name][r, :n] = self.inputs.extra[name][i].cpu()[pos]
            mask[r, :max(n, 1)] = 1
            if n == 0:  # nothing kept: the row holds the replacement token alone
                ids[r, 0] = self.replacement
        kwargs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
        kwargs.update({name: v.to(device) for name, v in extra.items()})
        rows = torch.tensor([i for i, _ in part], dtype=torch.long, device=device)
        return kwargs, rows
