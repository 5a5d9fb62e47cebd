"""The gradient engine: one forward/backward machinery for every gradient method.

The attributed activation is the output of one module (the word embeddings by default). The engine hooks that
module and replaces its output with the activations of a chunk of *points* (interpolation steps, noisy samples) of
many examples at once: the batch is expanded to ``chunk`` rows, each row ``rows[i]`` an example index, and run
through the model. The rest of the forward (position and token-type embeddings, masks) stays as it is. Points are
built and reduced per chunk, so memory is bounded by the chunk, never by ``n_steps``.

The engine runs inside :func:`attnscope.attribution.scope.scoped_model` (eval mode, frozen parameters, so the
forward keeps only what the input gradient needs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from ..chunking import progress_bar
from ...inputs import ModelInputs
from ..targets import Target

# Progress bar by default from this many chunks of forward + backward on.
PROGRESS_FROM = 2  # chunks; with progress=None the bar still waits PROGRESS_DELAY_S


class GradientEngine:
    """Values and gradients of ``target`` at arbitrary activations of ``layer``, in chunks of rows."""

    def __init__(self, model: nn.Module, layer: nn.Module, inputs: ModelInputs, target: Target) -> None:
        self.model, self.layer, self.inputs, self.target = model, layer, inputs, target
        self.chunk = 1
        self._override: Tensor | None = None
        self._captured: Tensor | None = None
        self.forward_rows = 0
        self.backward_rows = 0
        self.progress: bool | None = None  # a bar over chunks: None = from PROGRESS_FROM chunks on

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
        n_chunks = -(-n_points // self.chunk)
        with progress_bar(n_chunks, "gradients", "chunk", self.progress, PROGRESS_FROM) as bar:
            for start in range(0, n_points, self.chunk):
                self._step(start, min(n_points, start + self.chunk), make, consume)
                bar.update(1)

    def _step(self, start: int, stop: int, make: Callable, consume: Callable) -> None:
        acts, rows = make(start, stop)
        acts = acts.detach().requires_grad_(True)
        with torch.enable_grad():
            values = self._forward(acts, rows)
            (grads,) = torch.autograd.grad(values.sum(), acts)
        self.backward_rows += stop - start
        consume(start, stop, rows, grads.detach(), values.detach())


__all__ = ["PROGRESS_FROM", "GradientEngine"]
