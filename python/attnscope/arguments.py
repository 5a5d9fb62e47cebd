"""List arguments: indices (``layers=``, ``heads=``, ``positions=``), names (``methods=``) and texts.

A bool is an int to Python (``True == 1``), so ``layers=True`` used to mean layer 1 somewhere and a confusing
message elsewhere; a string is iterable, so ``texts="one text"`` used to become one text per character. Here both
are refused (or, for one name, taken as a list of one) with a message that says what the argument takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["int_list", "name_list", "text_list"]


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


def name_list(value: Any, name: str) -> list[str] | None:
    """``value`` as a list of strings (one string becomes a list of one); None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    what = f"{name} takes a name, a list of names or None"
    if isinstance(value, bytes) or not isinstance(value, Iterable):
        raise TypeError(f"{what}, got {value!r} ({type(value).__name__})")
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{what}, got {item!r} ({type(item).__name__}) in {name}={value!r}")
    return items


def text_list(texts: Any, name: str = "texts") -> list[str]:
    """``texts`` as a non-empty list of non-empty strings; one string is refused (it is not a list of texts)."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{name} must be a list of strings, got one string; pass [text] for a single text")
    if not isinstance(texts, Iterable):
        raise TypeError(f"{name} must be a list of strings, got {texts!r} ({type(texts).__name__})")
    texts = list(texts)
    if not texts:
        raise ValueError(f"{name} is empty: pass at least one text")
    bad = next((i for i, t in enumerate(texts) if not (isinstance(t, str) and t.strip())), None)
    if bad is not None:
        raise ValueError(f"{name}[{bad}] is not a non-empty string: {texts[bad]!r}")
    return texts
