"""One example's clean and corrupted runs, read once and reused by every patch.

A patching sweep runs the corrupted input many times with one activation changed. What a patch cannot change is
taken from the corrupted run instead of being recomputed:

* **KV prefix** (decoder-only causal LMs with a plain ``DynamicCache``): a patch at position ``p`` leaves positions
  ``< p`` as they were, so a chunk of patches whose earliest position is ``p0`` runs positions ``p0..`` on the
  corrupted run's keys and values of ``0..p0-1``; the logits of ``0..p0-1`` are the corrupted run's.
* **Lower layers**: a patch at layer ``l`` leaves layers ``< l`` as they were, so those layers are not run: each
  returns the corrupted run's output (layer ``l - 1``'s output is layer ``l``'s input).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..adapters.sites import base_model, get_module, num_layers
from .corruption import embedding_noise
from .edits import install_edit, site_family
from .metrics import Metric
from .pairs import Pair

__all__ = ["ExampleRuns", "forward_arguments", "record_sites", "uses_kv_prefix"]


def _cache_of(outputs: Any) -> Any:
    cache = getattr(outputs, "cache", None)  # transformers 5.24 names it cache (past_key_values warns)
    return cache if cache is not None else getattr(outputs, "past_key_values", None)


def uses_kv_prefix(model: nn.Module) -> bool:
    """A decoder-only causal LM, whose patched runs can start from a cached prefix."""
    cfg = getattr(model, "config", None)
    if getattr(cfg, "is_encoder_decoder", False):
        return False
    return bool(getattr(cfg, "is_decoder", False)) or type(model).__name__.endswith(("ForCausalLM", "LMHeadModel"))


def _plain_layers(cache: Any) -> list[tuple[Tensor, Tensor]] | None:
    """Per layer (keys, values) ``[1, kv_heads, n, d]`` of a plain DynamicCache; None for caches that cannot be
    cut at a position (sliding windows, other layer types)."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    if not isinstance(cache, DynamicCache) or not cache.layers:
        return None
    if any(type(layer) is not DynamicLayer for layer in cache.layers):
        return None
    return [(layer.keys, layer.values) for layer in cache.layers]


@contextlib.contextmanager
def record_sites(model: nn.Module, keys: list[tuple[str, int]], store: dict[tuple[str, int], Tensor],
                 detach: bool = True) -> Iterator[None]:
    """Record the tensor of every ``(site, layer)`` of ``keys`` into ``store`` during the block (``head_out``
    split into heads); ``detach=False`` keeps the autograd graph."""
    handles = []

    def recorder(key):
        def fn(x: Tensor) -> Tensor:
            store[key] = x.detach() if detach else x
            return x
        return fn

    try:
        for key in keys:
            handles.append(install_edit(model, key[0], key[1], recorder(key)))
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class ExampleRuns:
    """One example's clean and corrupted runs: clean activations at the patched sites, the corrupted run's layer
    outputs, keys and values and logits, the metric bound to the clean run and both metric values."""

    model: nn.Module
    pair: Pair
    metric: Metric
    clean: dict[tuple[str, int], Tensor] = field(default_factory=dict)
    layer_outputs: list[Tensor] = field(default_factory=list)  # corrupted, [1, n, d] per layer
    layer_tuples: list[int] = field(default_factory=list)  # 0: the layer returns a tensor; k: a k-tuple
    kv: list[tuple[Tensor, Tensor]] | None = None
    logits: Tensor | None = None  # corrupted [1, n, vocab]
    clean_value: float = float("nan")
    corrupted_value: float = float("nan")

    @property
    def n(self) -> int:
        return self.pair.n

    @property
    def clean_ids(self) -> Tensor:
        return self.pair.clean

    @property
    def corrupted_ids(self) -> Tensor:
        return self.pair.corrupted

    def prepare(self, keys: list[tuple[str, int]], tokenizer: Any, reuse: bool, model_inputs_of) -> None:
        """Run clean (recording ``keys``) and corrupted (recording what reuse needs) once each."""
        model = self.model
        with torch.no_grad(), record_sites(model, keys, self.clean):
            out = model(input_ids=self.clean_ids)
        self.metric = self.metric.bind(model, tokenizer, out, model_inputs_of(self.clean_ids))
        self.clean_value = float(self.metric(out, 1)[0])
        del out
        causal = reuse and uses_kv_prefix(model)
        layers = self._layers()
        self.layer_outputs = [None] * len(layers)  # type: ignore[list-item]
        self.layer_tuples = [0] * len(layers)
        handles = [layer.register_forward_hook(self._keeper(j)) for j, layer in enumerate(layers)] if reuse else []
        try:
            with torch.no_grad(), embedding_noise(model, self.pair.noise):
                out = model(input_ids=self.corrupted_ids, use_cache=True) if causal else model(
                    input_ids=self.corrupted_ids)
        finally:
            for handle in handles:
                handle.remove()
        self.corrupted_value = float(self.metric(out, 1)[0])
        self.kv = _plain_layers(_cache_of(out)) if causal else None
        self.logits = getattr(out, "logits", None)

    def _layers(self) -> list[nn.Module]:
        family = site_family(self.model)
        root = base_model(self.model)
        return [get_module(root, family.layers.format(i=j), owner=self.model) for j in range(num_layers(self.model))]

    def _keeper(self, j: int) -> Callable:
        def hook(module, args, output):
            if isinstance(output, tuple):
                self.layer_tuples[j] = len(output)
                output = output[0]
            self.layer_outputs[j] = output.detach()
        return hook

    @contextlib.contextmanager
    def _skipped_below(self, layer: int, start: int, rows: int) -> Iterator[None]:
        """Layers ``< layer`` return the corrupted run's outputs (positions ``start..``) instead of running."""
        modules = self._layers()[:layer]
        saved = [m.__dict__.get("forward") for m in modules]
        try:
            for j, module in enumerate(modules):
                value = self.layer_outputs[j][:, start:].expand(rows, -1, -1)
                result = (value, *([None] * (self.layer_tuples[j] - 1))) if self.layer_tuples[j] else value
                module.forward = (lambda *a, _r=result, **k: _r)  # type: ignore[method-assign]
            yield
        finally:
            for module, old in zip(modules, saved):
                if old is None:
                    module.__dict__.pop("forward", None)
                else:
                    module.forward = old  # type: ignore[method-assign]

    def first_run_position(self, start: int, reuse: bool) -> int:
        """Where a patched run starts: ``start`` when the KV prefix can be reused, else 0."""
        return start if reuse and self.kv is not None else 0

    def run_patched(self, site: str, layer: int, rows: int, start: int, patch: Callable[[Tensor], Tensor],
                    reuse: bool, cache_arg: str, keep_arg: bool) -> Tensor:
        """The metric of ``rows`` copies of the corrupted input with ``patch`` applied at ``site`` of ``layer``;
        positions ``< start`` unchanged by the patch (KV prefix), layers ``< layer`` too (not run). -> [rows]"""
        from transformers.cache_utils import DynamicCache
        from transformers.modeling_outputs import CausalLMOutput

        model = self.model
        start = self.first_run_position(start, reuse)
        kwargs: dict[str, Any] = {"input_ids": self.corrupted_ids[:, start:].expand(rows, -1)}
        if start > 0:
            kwargs[cache_arg] = DynamicCache(ddp_cache_data=[
                (k[..., :start, :].expand(rows, -1, -1, -1), v[..., :start, :].expand(rows, -1, -1, -1))
                for k, v in self.kv])
            kwargs["attention_mask"] = torch.ones((rows, self.n), dtype=torch.long, device=self.clean_ids.device)
        if uses_kv_prefix(model):
            kwargs["use_cache"] = start > 0
        if reuse and self.metric.last_only and keep_arg:
            kwargs["logits_to_keep"] = 1
        with contextlib.ExitStack() as stack, torch.no_grad():
            if reuse and layer > 0:
                stack.enter_context(self._skipped_below(layer, start, rows))
            stack.callback(install_edit(model, site, layer, patch).remove)
            stack.enter_context(embedding_noise(model, self.pair.noise, start))
            out = model(**kwargs)
        if start > 0 and "logits_to_keep" not in kwargs:
            out = CausalLMOutput(logits=torch.cat([self.logits[:, :start].expand(rows, -1, -1), out.logits], 1))
        return self.metric(out, rows)


def forward_arguments(model: nn.Module) -> tuple[str, bool]:
    """The forward's name for the cache (transformers 5.24 renamed it ``cache``) and whether it has
    ``logits_to_keep``."""
    params = inspect.signature(model.forward).parameters
    return ("cache" if "cache" in params else "past_key_values"), "logits_to_keep" in params
