"""``result.save(path)`` / ``attnscope.load(path)``: tensors in safetensors, everything else in JSON, no pickle.

A saved result is a folder with ``result.json`` (type, fields, nested results) and ``tensors.safetensors``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from torch import Tensor

FORMAT = "attnscope-result/1"
_TYPES: dict[str, type] = {}


def persistable(cls: type) -> type:
    """Class decorator: make a dataclass result saveable and loadable by name."""
    _TYPES[cls.__name__] = cls
    cls.save = save  # type: ignore[attr-defined]
    return cls


def _encode(obj: Any, prefix: str, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, Tensor):
        for key, stored in tensors.items():  # the same tensor reached twice is stored once
            if stored is obj or (stored.data_ptr() == obj.data_ptr() and stored.shape == obj.shape and obj.is_cpu
                                 and stored.dtype == obj.dtype and stored.stride() == obj.stride()):
                return {"__tensor__": key}
        key = prefix or "value"
        value = obj.detach().cpu()
        storage = value.untyped_storage().data_ptr()
        if any(stored.untyped_storage().data_ptr() == storage for stored in tensors.values()):
            value = value.clone()  # a view of a stored tensor (e.g. decoder ids sliced from the inputs)
        tensors[key] = value
        return {"__tensor__": key}
    if dataclasses.is_dataclass(obj) and type(obj).__name__ in _TYPES:
        fields = {}
        for f in dataclasses.fields(obj):
            if f.name.startswith("_") or f.metadata.get("persist") is False:
                continue
            fields[f.name] = _encode(getattr(obj, f.name), f"{prefix}.{f.name}" if prefix else f.name, tensors)
        return {"__result__": type(obj).__name__, "fields": fields}
    if isinstance(obj, (list, tuple)):
        return [_encode(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        return {"__dict__": {str(k): _encode(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot save a value of type {type(obj).__name__} at {prefix!r}")


def _decode(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {k: _decode(v, tensors) for k, v in obj["__dict__"].items()}
        if "__result__" in obj:
            cls = _TYPES.get(obj["__result__"])
            if cls is None:
                raise ValueError(f"unknown result type {obj['__result__']!r} (known: {sorted(_TYPES)})")
            return cls(**{k: _decode(v, tensors) for k, v in obj["fields"].items()})
    return obj


def save(result: Any, path: str | Path) -> Path:
    """Save a result object into the folder ``path`` (created if needed); returns the folder."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {}
    meta = {"format": FORMAT, "result": _encode(result, "", tensors)}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path / "tensors.safetensors"))
    (path / "result.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return path


def load(path: str | Path) -> Any:
    """Load a result saved with ``.save(path)``; it comes back with the same type and values."""
    from safetensors.torch import load_file

    path = Path(path)
    meta_file = path / "result.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a saved attnscope result (no result.json in it)")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_file} has format {meta.get('format')!r}; this attnscope reads {FORMAT!r}")
    tensors = load_file(str(path / "tensors.safetensors")) if (path / "tensors.safetensors").exists() else {}
    return _decode(meta["result"], tensors)


__all__ = ["load", "persistable", "save"]
