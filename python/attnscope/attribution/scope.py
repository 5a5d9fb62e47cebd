"""The model's state for the scope of one attribution call."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

from ..model_lock import model_lock

__all__ = ["scoped_model"]


@contextlib.contextmanager
def scoped_model(model: nn.Module) -> Iterator[None]:
    """Eval mode and frozen parameters for the scope; every module's mode and every flag restored after.

    The model's lock is held for the scope (:mod:`attnscope.model_lock`): a second thread's scope on the same model
    would otherwise save the frozen flags as the originals and leave the parameters frozen."""
    with model_lock(model):
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
