"""``result.save(path)`` / ``attnscope.load(path)``: tensors in safetensors, everything else in JSON, no pickle.

A saved result is a folder with ``result.json`` (type, fields, nested results, and each tensor's shape and dtype)
and ``tensors.safetensors``. Both files are replaced atomically, tensors first; a save id written into both tells
``load`` when they come from different saves (an overwrite interrupted between the two files). Every ``load``
failure names the file and what is wrong, and a loaded result is checked against its class (field types, tensor
dtypes and shapes: :mod:`attnscope.results.validation`) before it is returned.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

from torch import Tensor

from ..atomic_files import replacing, write_text
from .validation import check_loaded

FORMAT = "attnscope-result/1"
META = "result.json"
TENSORS = "tensors.safetensors"
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
        return {"__tensor__": key, "shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}
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


class _Reader:
    """Decodes ``result.json``'s tree against the loaded tensors; every error names the file and the JSON path."""

    def __init__(self, meta_file: Path, tensors: dict[str, Tensor], tensors_file: Path) -> None:
        self.meta_file, self.tensors, self.tensors_file = meta_file, tensors, tensors_file

    def fail(self, where: str, problem: str) -> ValueError:
        return ValueError(f"{self.meta_file}: {where or 'the result'} {problem}")

    def decode(self, obj: Any, where: str = "") -> Any:
        if isinstance(obj, list):
            return [self.decode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if not isinstance(obj, dict):
            return obj
        if "__tensor__" in obj:
            return self.tensor(obj, where)
        if "__dict__" in obj and isinstance(obj["__dict__"], dict):
            return {k: self.decode(v, f"{where}.{k}") for k, v in obj["__dict__"].items()}
        if "__result__" in obj:
            return self.result(obj, where)
        raise self.fail(where, f"is an object attnscope did not write (keys {sorted(obj)[:6]})")

    def tensor(self, obj: dict, where: str) -> Tensor:
        key = obj["__tensor__"]
        if not isinstance(key, str) or key not in self.tensors:
            held = sorted(self.tensors)
            raise self.fail(where, f"refers to tensor {key!r}, which {self.tensors_file} does not hold "
                                   f"(it holds {len(held)}: {held[:8]})")
        t = self.tensors[key]
        shape, dtype = obj.get("shape"), obj.get("dtype")
        if shape is not None and list(t.shape) != shape:
            raise self.fail(where, f"is tensor {key!r} of shape {shape} in the JSON, but {self.tensors_file} holds "
                                   f"shape {list(t.shape)}")
        if dtype is not None and str(t.dtype).removeprefix("torch.") != dtype:
            raise self.fail(where, f"is tensor {key!r} of dtype {dtype} in the JSON, but {self.tensors_file} holds "
                                   f"{t.dtype}")
        return t

    def result(self, obj: dict, where: str) -> Any:
        name = obj["__result__"]
        cls = _TYPES.get(name) if isinstance(name, str) else None
        if cls is None:
            raise self.fail(where, f"has unknown result type {name!r} (known: {sorted(_TYPES)})")
        fields = obj.get("fields")
        if not isinstance(fields, dict):
            raise self.fail(where, f"is a {name} without its 'fields' object")
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        required = {f.name for f in dataclasses.fields(cls) if f.init and f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING}
        if set(fields) - known or required - set(fields):
            raise self.fail(where, f"is a {name} with unknown fields {sorted(set(fields) - known)} and missing fields "
                                   f"{sorted(required - set(fields))}")
        result = cls(**{k: self.decode(v, f"{where}.{k}" if where else k) for k, v in fields.items()})
        check_loaded(result, f"{self.meta_file}: {where or 'the result'}")
        return result


def save(result: Any, path: str | Path) -> Path:
    """Save a result object into the folder ``path`` (created if needed); returns the folder.

    Each file is replaced atomically (the tensors first, then ``result.json``)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {}
    save_id = uuid.uuid4().hex
    meta = {"format": FORMAT, "save_id": save_id, "result": _encode(result, "", tensors)}
    with replacing(path / TENSORS) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"save_id": save_id})
    write_text(path / META, json.dumps(meta, indent=1) + "\n")
    return path


def _read_meta(meta_file: Path) -> dict:
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{meta_file} is not valid JSON (truncated or edited?): {err}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_file} holds a JSON {type(meta).__name__}, not an attnscope result object")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_file} has format {meta.get('format')!r}; this attnscope reads {FORMAT!r}")
    if not isinstance(meta.get("result"), dict):
        raise ValueError(f"{meta_file} has no 'result' object (truncated or edited?)")
    return meta


def _read_tensors(tensors_file: Path, meta: dict, meta_file: Path) -> dict[str, Tensor]:
    from safetensors import safe_open

    uses_tensors = '"__tensor__"' in json.dumps(meta["result"])
    if not tensors_file.is_file():
        if uses_tensors:
            raise FileNotFoundError(f"{tensors_file} is missing: {meta_file} refers to tensors stored in it")
        return {}
    try:
        with safe_open(str(tensors_file), framework="pt") as f:
            saved_id = (f.metadata() or {}).get("save_id")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for truncated or corrupt files
        raise ValueError(f"{tensors_file} cannot be read as safetensors (truncated or corrupt?): {err}") from None
    if meta.get("save_id") is not None and saved_id != meta["save_id"]:
        raise ValueError(
            f"{tensors_file} and {meta_file} come from different saves (save ids {saved_id!r} and "
            f"{meta['save_id']!r}): an overwrite of this folder was interrupted, or a file was copied in; save again"
        )
    return tensors


def load(path: str | Path) -> Any:
    """Load a result saved with ``.save(path)``; it comes back with the same type and values.

    Raises ``FileNotFoundError`` or ``ValueError`` naming the file and what is wrong with it; the result is checked
    (field types, tensor dtypes and shapes) before it is returned."""
    path = Path(path)
    meta_file = path / META
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a saved attnscope result (no {META} in it)")
    meta = _read_meta(meta_file)
    tensors_file = path / TENSORS
    tensors = _read_tensors(tensors_file, meta, meta_file)
    try:
        return _Reader(meta_file, tensors, tensors_file).decode(meta["result"])
    except (KeyError, TypeError, AttributeError) as err:  # a tree attnscope did not write
        raise ValueError(f"{meta_file} does not describe a result this attnscope can read "
                         f"({type(err).__name__}: {err})") from None


__all__ = ["load", "persistable", "save"]
