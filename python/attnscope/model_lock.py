"""One lock per model: attnscope's calls on the same model run one at a time, in any thread.

Every attnscope call installs something on the model for its duration (the attention implementation of its
configs, forward hooks, frozen ``requires_grad`` flags, eval mode) and restores it afterwards. Two threads doing
that at once on one model would save each other's installation as "the original" and restore the wrong state
(parameters left frozen, the capture's attention function left installed), and each thread's hooks would record
the other's forwards. The lock serialises these scopes per model; it is reentrant, so a call made inside a scope of
the same thread (``attribute`` inside ``with ats.capture(model)``) proceeds.

A thread that opens ``with ats.capture(model)`` and then waits for another thread's attnscope call on the same model
would wait forever: finish the scope first.
"""

from __future__ import annotations

import functools
import inspect
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from torch import nn

__all__ = ["acquire", "holds_model", "model_lock"]

_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()
F = TypeVar("F", bound=Callable[..., Any])


def _lock_of(model: nn.Module) -> threading.RLock:
    with _GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


@contextmanager
def model_lock(model: Any) -> Iterator[None]:
    """Hold ``model``'s lock for the ``with`` block (nothing for an object that is not a module)."""
    if not isinstance(model, nn.Module):
        yield
        return
    lock = _lock_of(model)
    with lock:
        yield


def acquire(model: Any) -> Callable[[], None]:
    """Take ``model``'s lock now; returns the function that releases it (for scopes with ``__enter__``/``__exit__``)."""
    if not isinstance(model, nn.Module):
        return lambda: None
    lock = _lock_of(model)
    lock.acquire()
    return lock.release


def holds_model(fn: F) -> F:
    """Decorator: the call holds the lock of its ``model`` argument (by position or keyword) while it runs."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            model = signature.bind_partial(*args, **kwargs).arguments.get("model")
        except TypeError:  # the call itself is malformed: let the function raise its own error
            model = None
        with model_lock(model):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
