"""Forward pre-hooks on the LM head for one forward: cut the graph at its input, or gather one position per row."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["HeadGather", "HeadHook", "HeadSplit"]


class HeadHook:
    """A forward pre-hook on the LM head (the output embeddings) for one forward: on the head's first call with a
    tensor input, ``_swap`` may hand the head another input. ``calls`` counts the head's calls; the hook is removed
    on exit, also after errors."""

    def __init__(self, head: nn.Module | None) -> None:
        self.head = head
        self.calls = 0
        self._handle = None

    def _swap(self, hidden: Tensor) -> Tensor | None:
        raise NotImplementedError

    def _pre(self, module: nn.Module, args: tuple) -> tuple | None:
        self.calls += 1
        if self.calls > 1 or not args or not isinstance(args[0], Tensor):
            return None
        new = self._swap(args[0])
        return None if new is None else (new, *args[1:])

    def __enter__(self):
        if self.head is not None:
            self._handle = self.head.register_forward_pre_hook(self._pre)
        return self

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def __exit__(self, *exc: object) -> None:
        self.close()


class HeadSplit(HeadHook):
    """Cuts the graph at the LM head's input: records the input ``hidden`` (the body's graph ends there) and hands
    the head a detached leaf copy ``leaf`` (the head's graph starts there). ``ok`` says the head ran exactly once on
    a ``[rows, K, H]`` input; otherwise the caller differentiates through the whole graph as usual."""

    def __init__(self, head: nn.Module | None) -> None:
        super().__init__(head)
        self.hidden: Tensor | None = None
        self.leaf: Tensor | None = None

    def _swap(self, hidden: Tensor) -> Tensor | None:
        if not hidden.requires_grad:
            return None
        self.hidden = hidden
        self.leaf = hidden.detach().requires_grad_(True)
        return self.leaf

    @property
    def ok(self) -> bool:
        return self.calls == 1 and self.leaf is not None and self.leaf.dim() == 3


class HeadGather(HeadHook):
    """Hands the LM head only row ``i``'s position ``index[i]`` of its input (``[rows, 1, H]``): each expanded row
    needs the logits of one position, not of every kept one. ``ok`` says it happened (the head ran once on a
    ``[rows, K, H]`` input); otherwise the logits are as usual."""

    def __init__(self, head: nn.Module | None, rows: Tensor, index: Tensor) -> None:
        super().__init__(head)
        self.rows, self.index = rows, index
        self.gathered = False

    def _swap(self, hidden: Tensor) -> Tensor | None:
        if hidden.dim() != 3 or hidden.shape[0] != self.rows.shape[0]:
            return None
        self.gathered = True
        k = hidden.shape[1]
        return hidden[self.rows, k - 1 - (int(self.index.max()) - self.index)].unsqueeze(1)

    @property
    def ok(self) -> bool:
        return self.calls == 1 and self.gathered
