"""Checks a loaded result passes before anything uses it: each field's type, and each tensor's dtype and shape.

A result class may declare ``SHAPES``: ``{field: spec or (spec, spec, ...)}`` where a spec is a dtype kind followed
by axis names, e.g. ``"float batch seq"``; a list field's spec is ``"list axis"`` (its length). Axes with the same
name must agree across all fields of one result (``scores`` and ``input_ids`` have the same ``batch`` and ``seq``);
alternatives cover fields with optional axes (weights with or without the head axis). Kinds: ``float``, ``int``,
``bool``, ``mask`` (int or bool), ``any``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import torch
from torch import Tensor

__all__ = ["check_loaded"]

_KINDS = {
    "float": lambda t: t.is_floating_point(),
    "int": lambda t: not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool,
    "bool": lambda t: t.dtype == torch.bool,
    "mask": lambda t: t.dtype == torch.bool or (not t.is_floating_point() and not t.is_complex()),
    "any": lambda t: True,
}


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits the annotation ``hint`` at its outer level (containers by their own type)."""
    if hint is Any or hint is object:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is None or hint is type(None):
        return value is None
    if origin is not None:
        hint = origin
    if not isinstance(hint, type):
        return True  # a callable or forward reference we do not check
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return False
    return isinstance(value, hint)


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r}"[:120]


def _check_types(result: Any, where: str) -> None:
    hints = typing.get_type_hints(type(result))
    for f in dataclasses.fields(result):
        if f.metadata.get("persist") is False or f.name.startswith("_"):
            continue
        value = getattr(result, f.name)
        if not _type_ok(value, hints.get(f.name, Any)):
            raise ValueError(f"{where}: field {f.name!r} should be {hints[f.name]}, got {_describe(value)}")


def _match(value: Any, spec: str, axes: dict[str, int]) -> str | None:
    """None when ``value`` fits ``spec`` (binding new axes into ``axes``), else what is wrong."""
    kind, *names = spec.split()
    if kind == "list":
        sizes = [len(value)]
    else:
        if not _KINDS[kind](value):
            return f"dtype {value.dtype} is not {kind}"
        if value.dim() != len(names):
            return f"has {value.dim()} axes, expected {len(names)} [{', '.join(names)}]"
        sizes = list(value.shape)
    for name, size in zip(names, sizes):
        if name in axes and axes[name] != size:
            return f"axis {name} is {size}, but another field has {name} = {axes[name]}"
    axes.update(zip(names, sizes))
    return None


def check_loaded(result: Any, where: str) -> None:
    """Raise ``ValueError`` (prefixed with ``where``: the file) if ``result``'s fields do not fit its class."""
    _check_types(result, where)
    axes: dict[str, int] = {}
    for name, specs in getattr(type(result), "SHAPES", {}).items():
        value = getattr(result, name, None)
        if value is None:
            continue
        specs = (specs,) if isinstance(specs, str) else specs
        problems = []
        for spec in specs:
            trial = dict(axes)
            problem = _match(value, spec, trial)
            if problem is None:
                axes = trial
                break
            problems.append(f"[{spec}]: {problem}")
        else:
            raise ValueError(f"{where}: field {name!r} ({_describe(value)}) does not fit " + "; ".join(problems))
