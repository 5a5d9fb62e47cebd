"""The gradient engine: one forward/backward machinery for every gradient method.

The attributed activation is the output of one module (the word embeddings by default). The engine hooks that
module and replaces its output with the activations of a chunk of *points* (interpolation steps, noisy samples) of
many examples at once: the batch is expanded to ``chunk`` rows, each row ``rows[i]`` an example index, and run
through the model. The rest of the forward (position and token-type embeddings, masks) stays as it is. Points are
built and reduced per chunk, so memory is bounded by the chunk, never by ``n_steps``.

Inside :func:`scoped_model` the model is in eval mode and its parameters do not require gradients (so the forward
keeps only what the input gradient needs); both are restored on exit, also after exceptions.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from .inputs import ModelInputs
from .targets import Target

# "auto" chunks stop growing at this many tokens per forward. On CPU, MiniLM at L = 128 runs 4-row chunks within
# about 10 % of 32-row chunks (one thread), at an eighth of the activation memory; a fixed cap also keeps the
# peak independent of n_steps.
AUTO_MAX_TOKENS = 512
# Share of the available memory that the default budget takes.
DEFAULT_BUDGET_FRACTION = 0.25


@contextlib.contextmanager
def scoped_model(model: nn.Module) -> Iterator[None]:
    """Eval mode and frozen parameters for the scope; every module's mode and every flag restored after."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, mode in modes:
            m.training = mode


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable on Linux; 4 GiB when unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def estimate_row_bytes(model: nn.Module, seq: int, logits_per_token: int) -> int:
    """Rough bytes one row (one point) keeps alive through forward and backward: activations saved per layer
    (hidden-sized tensors, the MLP, attention probabilities), plus the logits."""
    cfg = getattr(model, "config", None)
    hidden = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "n_embd", 0) or 768)
    layers = int(getattr(cfg, "num_hidden_layers", 0) or getattr(cfg, "n_layer", 0) or 12)
    heads = int(getattr(cfg, "num_attention_heads", 0) or getattr(cfg, "n_head", 0) or 12)
    inter = int(getattr(cfg, "intermediate_size", 0) or getattr(cfg, "n_inner", 0) or 4 * hidden)
    per_layer = seq * (12 * hidden + 3 * inter) + 3 * heads * seq * seq
    return 4 * (layers * per_layer + 3 * seq * logits_per_token + 4 * seq * hidden)


def choose_chunk(
    internal_batch_size: int | str,
    memory_budget: int | None,
    model: nn.Module,
    seq: int,
    logits_per_token: int,
    n_points: int,
    max_tokens: int = AUTO_MAX_TOKENS,
    balanced: bool = False,
) -> int:
    """Rows per forward: the user's int, or under "auto" what fits the memory budget (capped at ``max_tokens``
    tokens per forward); ``balanced`` splits the points evenly, so that the last chunk is not a small remainder."""
    if internal_batch_size != "auto":
        return max(1, min(int(internal_batch_size), max(1, n_points)))
    budget = memory_budget if memory_budget is not None else int(DEFAULT_BUDGET_FRACTION * available_memory())
    by_memory = budget // max(1, estimate_row_bytes(model, seq, logits_per_token))
    by_tokens = max(1, max_tokens // max(1, seq))
    cap = int(max(1, min(by_memory, by_tokens, max(1, n_points))))
    if not balanced:
        return cap
    n_chunks = -(-max(1, n_points) // cap)
    return -(-max(1, n_points) // n_chunks)


class GradientEngine:
    """Values and gradients of ``target`` at arbitrary activations of ``layer``, in chunks of rows."""

    def __init__(self, model: nn.Module, layer: nn.Module, inputs: ModelInputs, target: Target) -> None:
        self.model, self.layer, self.inputs, self.target = model, layer, inputs, target
        self.chunk = 1
        self._override: Tensor | None = None
        self._captured: Tensor | None = None
        self.forward_rows = 0
        self.backward_rows = 0

    # --- the hook ----------------------------------------------------------------------------------------------
    def _hook(self, module: nn.Module, args: tuple, output: object) -> object:
        out = output[0] if isinstance(output, (tuple, list)) else output
        if not isinstance(out, Tensor):
            raise TypeError(f"layer {type(module).__name__} returns {type(out).__name__}; attribution needs a tensor output")
        if self._override is None:
            self._captured = out.detach()
            return output
        new = self._override
        if new.shape != out.shape:
            raise ValueError(
                f"activations of shape {tuple(new.shape)} do not match the output of layer "
                f"{type(module).__name__} {tuple(out.shape)}"
            )
        new = new.to(out.dtype)
        if isinstance(output, tuple):
            return (new, *output[1:])
        if isinstance(output, list):
            return [new, *output[1:]]
        return new

    @contextlib.contextmanager
    def installed(self) -> Iterator[GradientEngine]:
        handle = self.layer.register_forward_hook(self._hook)
        try:
            yield self
        finally:
            handle.remove()
            self._override = None
            self._captured = None

    # --- forwards ----------------------------------------------------------------------------------------------
    def capture(self, input_ids: Tensor | None = None) -> tuple[Tensor, object]:
        """Forward on all examples (with ``input_ids`` in place of the inputs' ids if given), no gradient.
        Returns the layer's output ``[batch, seq, hidden]`` and the model outputs."""
        rows = torch.arange(self.inputs.batch, device=self.inputs.input_ids.device)
        with torch.no_grad():
            outputs = self.model(**self.inputs.forward_kwargs(rows, input_ids))
        act = self._captured
        self._captured = None
        if act is None:
            raise ValueError(
                f"layer {type(self.layer).__name__} did not run in the forward of {type(self.model).__name__}; "
                "pass a layer= that the forward uses"
            )
        self.forward_rows += self.inputs.batch
        return act, outputs

    def values(self, acts: Tensor, rows: Tensor) -> Tensor:
        """Target values ``[c]`` at activations ``acts`` ``[c, seq, hidden]`` of examples ``rows`` ``[c]``."""
        out = []
        for start in range(0, rows.shape[0], self.chunk):
            sl = slice(start, start + self.chunk)
            with torch.no_grad():
                out.append(self._forward(acts[sl], rows[sl]).detach())
        return torch.cat(out)

    def _forward(self, acts: Tensor, rows: Tensor) -> Tensor:
        self._override = acts
        try:
            outputs = self.model(**self.inputs.forward_kwargs(rows))
        finally:
            self._override = None
        self.forward_rows += int(rows.shape[0])
        values = self.target(outputs, rows, self.inputs.attention_mask[rows])
        if not isinstance(values, Tensor) or values.shape != (rows.shape[0],):
            raise ValueError(f"the target gave shape {getattr(values, 'shape', None)}, expected [{rows.shape[0]}]")
        return values

    def run(
        self,
        n_points: int,
        make: Callable[[int, int], tuple[Tensor, Tensor]],
        consume: Callable[[int, int, Tensor, Tensor, Tensor], None],
    ) -> None:
        """For each chunk ``[start, stop)`` of ``n_points``: ``acts, rows = make(start, stop)``, forward and backward,
        then ``consume(start, stop, rows, grads [c, seq, hidden], values [c])``."""
        for start in range(0, n_points, self.chunk):
            stop = min(n_points, start + self.chunk)
            acts, rows = make(start, stop)
            acts = acts.detach().requires_grad_(True)
            with torch.enable_grad():
                values = self._forward(acts, rows)
                (grads,) = torch.autograd.grad(values.sum(), acts)
            self.backward_rows += stop - start
            consume(start, stop, rows, grads.detach(), values.detach())


def per_point_generator(seed: int, example: int, sample: int) -> torch.Generator:
    """The random stream of one point (example, sample): draws do not depend on chunking or batch layout."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + example * 10_007 + sample) % (2**63 - 1))
    return g


__all__ = [
    "AUTO_MAX_TOKENS",
    "GradientEngine",
    "available_memory",
    "choose_chunk",
    "estimate_row_bytes",
    "per_point_generator",
    "scoped_model",
]
