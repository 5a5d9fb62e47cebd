"""Index arguments (``layers=``, ``heads=``, ``positions=``): one int, a list of ints, or None.

A bool is an int to Python (``True == 1``), so ``layers=True`` used to mean layer 1 somewhere and a confusing
message elsewhere; here it is refused with a message that says what the argument takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["int_list"]


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def int_list(value: Any, name: str) -> list[int] | None:
    """``value`` as a list of ints (one int becomes a list of one); None stays None.

    Raises ``TypeError`` naming ``name`` and what was passed for a bool, a string, a float or a list holding one.
    """
    if value is None:
        return None
    if _is_index(value):
        return [value]
    what = f"{name} takes an int, a list of ints or None"
    if isinstance(value, bool):
        raise TypeError(f"{what}, got {value!r} (a bool, not a list of indices)")
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{what}, got {value!r} ({type(value).__name__})")
    items = list(value)
    for item in items:
        if not _is_index(item):
            kind = "a bool" if isinstance(item, bool) else type(item).__name__
            raise TypeError(f"{what}, got {item!r} ({kind}) in {name}={value!r}")
    return items
