"""Activation capture: forward hooks on the modules of each site, with reductions inside the hooks.

``with ats.capture(model, activations=...) as cap:`` installs the hooks (an :class:`ActivationCapture`) for the
scope of the block (any forward or ``model.generate()``); ``ats.capture_activations(model, inputs, ...)`` runs one
forward in such a scope. A reduced
capture (``"norm"``, ``"mean"``, ``("topk", k)``) keeps only the reduced tensor of each call, never the full one.
Hooks are removed on exit, also after an exception.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, Union

import torch
from torch import Tensor, nn

from ..arguments import int_list
from ..adapters.sites import SITES, Family, find_family, layer_indices, num_heads, num_layers, site_module
from ..inputs import model_device, model_inputs
from ..results.activations import ActivationResult
from ..model_lock import acquire, holds_model

Reduce = Union[None, str, tuple]
SiteSpec = Union[str, Sequence[str], Mapping[str, Union[str, None]]]

__all__ = ["ActivationCapture", "capture_activations", "normalize_layers", "normalize_sites", "read_site"]


def normalize_sites(sites: SiteSpec) -> dict[str, str | None]:
    """``sites`` as ``{site: module path template or None (the family adapter's)}``; unknown names raise."""
    if isinstance(sites, str):
        sites = (sites,)
    if isinstance(sites, Mapping):
        items = list(sites.items())
    elif isinstance(sites, Sequence):
        items = [(s, None) for s in sites]
    else:
        raise TypeError(f"sites must be a site name, a list of them or a dict site -> module path, got "
                        f"{type(sites).__name__}")
    if not items:
        raise ValueError(f"sites is empty: name at least one of {', '.join(SITES)}")
    out: dict[str, str | None] = {}
    for name, path in items:
        if not isinstance(name, str):
            raise TypeError(f"site names must be strings, got {name!r}")
        if path is not None and (not isinstance(path, str) or not path):
            raise TypeError(f"the module path of site {name!r} must be a non-empty string, got {path!r}")
        if path is None and name not in SITES:
            raise ValueError(f"unknown site {name!r}: valid sites are {', '.join(SITES)} (or pass a module path, "
                             f"sites={{{name!r}: 'model.layers.{{i}}.mlp'}})")
        out[name] = path
    return out


def normalize_layers(layers: Sequence[int] | int | None, n_layers: int) -> list[int]:
    """Layer indices to hook: None = all; an empty list is an error (nothing would be captured)."""
    out = layer_indices(layers, n_layers)
    if out is None:
        return list(range(n_layers))
    if not out:
        raise ValueError("layers is empty: pass None for all layers or at least one index")
    return out


def _normalize_reduce(reduce: Reduce) -> tuple[str | None, int]:
    if reduce is None or reduce in ("norm", "mean"):
        return reduce, 0
    if isinstance(reduce, tuple) and len(reduce) == 2 and reduce[0] == "topk":
        k = reduce[1]
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"top_k must be a positive integer, got {k!r} in reduce={reduce!r}")
        return "topk", k
    raise ValueError(f"unknown reduce {reduce!r}: use None, 'norm', 'mean' (over positions) or ('topk', k)")


def _normalize_positions(positions: Sequence[int] | int | None) -> list[int] | None:
    positions = int_list(positions, "positions")
    if positions is None:
        return None
    out = []
    for p in positions:
        if p < 0:
            raise ValueError(f"position {p} is negative: inside a capture scope positions count from the start "
                             "(capture_activations resolves negative positions against the input's length)")
        out.append(p)
    if not out:
        raise ValueError("positions is empty: pass None for all positions or at least one index")
    return sorted(set(out))


def read_site(side: str, args: tuple, kwargs: dict, output: Any = None) -> Tensor:
    """The tensor a site reads: the module's first input (``"in"``) or its output's first element (``"out"``)."""
    if side == "in":
        x = args[0] if args else kwargs.get("hidden_states")
    else:
        x = output[0] if isinstance(output, (tuple, list)) else output
        if not isinstance(x, Tensor) and hasattr(x, "to_tuple"):
            x = x.to_tuple()[0]
    if not isinstance(x, Tensor):
        raise TypeError(f"the hooked module gave {type(x).__name__}, not a tensor; pass another module path")
    return x


@dataclass
class _Sequence:
    mask: Tensor | None = None  # [batch, seq so far] attention mask given to the forwards
    chunks: dict[tuple[str, int], list[tuple[int, Any]]] = field(default_factory=lambda: defaultdict(list))


class ActivationCapture:
    """Record activations of every forward (or ``model.generate``) run inside the ``with`` block.

    Args:
        model: a Hugging Face transformer of a family in :mod:`attnscope.adapters.sites` (or any model, with module
            paths in ``sites``).
        sites: site names (``resid_pre``, ``resid_mid``, ``resid_post``, ``attn_out``, ``head_out``, ``mlp_out``,
            ``mlp_hidden``) or a dict ``{name: "path.{i}.to.module"}`` (the module's output; relative to ``model``).
        layers: layer indices (negative count from the end); None = all.
        positions: absolute positions to keep (non-negative here); None = all.
        consumer: internal: ``consumer(site, layer, x)`` receives each selected tensor instead of the result
            (streaming statistics); nothing is stored then.
        reduce: None (the full tensors), ``"norm"`` (L2 over the last axis), ``"mean"`` (over positions, padding
            excluded when an attention mask is given) or ``("topk", k)`` (the k largest units per token).
        tokenizer: fills ``.tokens`` of the result.

    Used by ``ats.capture(model, activations=...)`` (``cap.activations``). After the block, ``.result`` is the
    ActivationResult of the last sequence (one forward, or one ``generate()`` assembled along positions) and
    ``.results`` holds all of them.
    """

    def __init__(self, model: nn.Module, *, sites: SiteSpec = ("resid_post",),
                 layers: Sequence[int] | int | None = None, positions: Sequence[int] | int | None = None, reduce: Reduce = None, tokenizer: Any = None,
                 consumer: Callable[[str, int, Tensor], None] | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a Hugging Face transformer (torch.nn.Module), got {type(model).__name__}")
        self.model = model
        self.sites = normalize_sites(sites)
        self.family: Family | None = None
        if any(path is None for path in self.sites.values()):
            self.family = find_family(model)
        self.layers = normalize_layers(layers, num_layers(model))
        self.positions = _normalize_positions(positions)
        self.reduce, self.k = _normalize_reduce(reduce)
        self.tokenizer = tokenizer
        self.consumer = consumer
        self.heads = num_heads(model) if "head_out" in self.sites else 0
        # Resolve every module now, so a bad path fails before anything is installed.
        self._targets = [(site, layer, *site_module(model, self.family, site, layer, path))
                         for site, path in self.sites.items() for layer in self.layers]
        self._handles: list[Any] = []
        self._sequences: list[_Sequence] = []
        self._offset = 0
        self._shape: tuple[int, ...] | None = None
        self.results: list[ActivationResult] = []
        self.inputs: dict[str, Tensor] | None = None

    # --- installation -------------------------------------------------------------------------------------
    def __enter__(self) -> ActivationCapture:
        # One attnscope scope per model at a time (attnscope.model_lock); hooks ignore other threads' forwards.
        self._release = acquire(self.model)
        self._thread = threading.get_ident()
        try:
            self._handles.append(self.model.register_forward_pre_hook(self._this_thread(self._on_forward),
                                                                      with_kwargs=True))
            for site, layer, module, side in self._targets:
                hook = self._this_thread(self._make_hook(site, layer, side))
                if side == "in":
                    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
                else:
                    handle = module.register_forward_hook(hook, with_kwargs=True)
                self._handles.append(handle)
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.remove()
        if exc_type is None and self.consumer is None:
            self.results = [self._assemble(seq) for seq in self._sequences]

    def remove(self) -> None:
        """Remove every hook (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        release, self._release = getattr(self, "_release", None), None
        if release is not None:
            release()

    def _this_thread(self, hook: Callable) -> Callable:
        """``hook`` for forwards of the thread that entered the scope; another thread's forward runs untouched."""

        def mine(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == self._thread:
                return hook(*args, **kwargs)
            return None

        return mine

    @property
    def installed(self) -> bool:
        return bool(self._handles)

    # --- recording ----------------------------------------------------------------------------------------
    def _on_forward(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        cache = kwargs.get("past_key_values", kwargs.get("cache"))  # transformers 5 names it `cache`
        offset = 0
        if cache is not None and hasattr(cache, "get_seq_length"):
            offset = int(cache.get_seq_length())
        if self.consumer is not None:  # streaming: nothing is kept from one forward to the next
            self._sequences = [_Sequence()]
        elif offset == 0 or not self._sequences:
            self._sequences.append(_Sequence())
        self._offset = offset
        ids = kwargs.get("input_ids", kwargs.get("inputs_embeds", args[0] if args else None))
        self._shape = tuple(ids.shape[:2]) if isinstance(ids, Tensor) and ids.dim() >= 2 else None
        mask = kwargs.get("attention_mask")
        self._sequences[-1].mask = mask.detach() if isinstance(mask, Tensor) and mask.dim() == 2 else None

    def _select(self, x: Tensor, offset: int) -> tuple[Tensor, Tensor | None]:
        """Keep the requested absolute positions of ``x`` [batch, n, ...]; also their mask [batch, kept]."""
        n = x.shape[1]
        mask = self._sequences[-1].mask if self._sequences else None
        if mask is not None:
            mask = mask[:, -n:] if mask.shape[1] >= n else None
        if self.positions is not None:
            keep = [p - offset for p in self.positions if offset <= p < offset + n]
            index = torch.tensor(keep, dtype=torch.long, device=x.device)
            x = x.index_select(1, index)
            mask = mask.index_select(1, index.to(mask.device)) if mask is not None else None
        return x, mask

    def _make_hook(self, site: str, layer: int, side: str):
        def hook(module, args, kwargs, output=None):
            if not self._sequences:  # the hooked module ran outside a forward of the model
                self._sequences.append(_Sequence())
            x = read_site(side, args, kwargs, output).detach()
            if x.dim() == 2 and self._shape and x.shape[0] == self._shape[0] * self._shape[1]:
                x = x.reshape(*self._shape, -1)  # modules that flatten tokens (OPT's MLP)
            if site == "head_out":
                x = x.reshape(*x.shape[:2], self.heads, -1)
            x, mask = self._select(x, self._offset)
            if self.consumer is not None:  # a streaming consumer (neuron statistics) takes the tensor instead
                self.consumer(site, layer, x)
                return None
            self._sequences[-1].chunks[(site, layer)].append((self._offset, self._reduce(x, mask)))
            return None

        return hook

    def _reduce(self, x: Tensor, mask: Tensor | None) -> Any:
        if self.reduce is None:
            return x
        if self.reduce == "norm":
            return x.float().norm(dim=-1)
        if self.reduce == "topk":
            k = min(self.k, x.shape[-1])
            return x.topk(k, dim=-1)
        weight = mask.to(torch.float32) if mask is not None else x.new_ones(x.shape[:2], dtype=torch.float32)
        weight = weight.reshape(*weight.shape, *([1] * (x.dim() - 2)))
        return (x.float() * weight).sum(1), weight.sum(1)

    # --- assembly -----------------------------------------------------------------------------------------
    def _assemble(self, seq: _Sequence) -> ActivationResult:
        values: dict[str, Tensor] = {}
        indices: dict[str, Tensor] = {}
        for site in self.sites:
            per_layer, per_layer_idx = [], []
            for layer in self.layers:
                chunks = seq.chunks.get((site, layer), [])
                if not chunks:
                    raise RuntimeError(f"site {site!r} of layer {layer} did not run during the forward: the module "
                                       "was skipped (pass another module path)")
                if self.reduce == "mean":
                    total = sum(c[0] for _, c in chunks)
                    count = sum(c[1] for _, c in chunks)
                    per_layer.append(total / count.clamp_min(1.0))
                elif self.reduce == "topk":
                    per_layer.append(torch.cat([c.values for _, c in chunks], dim=1))
                    per_layer_idx.append(torch.cat([c.indices for _, c in chunks], dim=1))
                else:
                    per_layer.append(torch.cat([c for _, c in chunks], dim=1))
            values[site] = torch.stack(per_layer)
            if per_layer_idx:
                indices[site] = torch.stack(per_layer_idx)
        result = ActivationResult(activations=values, layers=list(self.layers), sites=list(self.sites),
                                  reduce=self.reduce, positions=self.positions, topk_indices=indices)
        ids = self.inputs.get("input_ids") if self.inputs is not None else None
        if ids is not None:
            result.input_ids = ids
            result.attention_mask = self.inputs.get("attention_mask")
            if self.tokenizer is not None:
                result.tokens = [self.tokenizer.convert_ids_to_tokens(row.tolist()) for row in ids]
        return result

    @property
    def result(self) -> ActivationResult:
        """The ActivationResult of the last recorded sequence."""
        if not self.results:
            if self._handles:
                raise RuntimeError("the activations are available after the `with` block ends")
            raise RuntimeError("nothing was captured: no forward of the model ran inside the block")
        return self.results[-1]


@holds_model
def capture_activations(model: nn.Module, inputs: Any, *, sites: SiteSpec = ("resid_post",),
                        layers: Sequence[int] | int | None = None, positions: Sequence[int] | int | None = None,
                        reduce: Reduce = None, tokenizer: Any = None) -> ActivationResult:
    """Activations of one forward pass at the given sites and layers.

    Args:
        model: a Hugging Face model (see :class:`activations` for the families and module paths).
        inputs: a tokenizer's output, an ``input_ids`` tensor ``[batch, seq]``, or strings with ``tokenizer=``.
        sites, layers, reduce, tokenizer: see :class:`activations`.
        positions: positions to keep; negative ones count from the end of the (padded) input.

    Returns:
        ActivationResult: ``.get(site)`` is ``[layer, batch, position, dim]`` (``head_out``: ``[layer, batch,
        position, head, d_head]``; ``"norm"`` drops the last axis, ``"mean"`` the position axis, ``("topk", k)``
        keeps k values with ``.indices(site)``).
    """
    enc = model_inputs(inputs, tokenizer=tokenizer, model=model, device=model_device(model))
    kwargs = enc.kwargs
    if positions is not None:
        seq = enc.seq
        plist = [positions] if isinstance(positions, int) else list(positions)
        for p in plist:
            if isinstance(p, int) and not isinstance(p, bool) and not -seq <= p < seq:
                raise ValueError(f"position {p} out of range: the input has {seq} positions (0..{seq - 1})")
        positions = [p % seq if isinstance(p, int) and not isinstance(p, bool) else p for p in plist]
    scope = ActivationCapture(model, sites=sites, layers=layers, positions=positions, reduce=reduce,
                              tokenizer=tokenizer)
    scope.inputs = kwargs
    with scope, torch.no_grad():
        model(**kwargs)
    return scope.result
