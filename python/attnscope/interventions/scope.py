"""``with ats.intervene(model) as iv:``: head ablation, activation setting and steering for any forward inside.

Head ablations go through attnscope's AttentionInterface function (a capture scope with an editor, see
:mod:`attnscope.capturing.editors`): they replace a head's output before the output projection. ``set`` and ``add``
edit any site of :mod:`attnscope.adapters.sites` through forward hooks. On exit, also after an exception, every
hook is removed, the model's attention implementation, training flags and ``requires_grad`` flags are restored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..activations.capture import capture_activations
from ..adapters.sites import num_heads
from ..attribution.scope import scoped_model
from ..capturing import capture
from ..inputs import model_device, model_inputs
from .edits import check_layer, check_site, install_edit

__all__ = ["Intervention", "intervene"]

_HOW = ("zero", "mean", "resample")


def _cache_offset(kwargs: dict) -> int:
    cache = kwargs.get("past_key_values", kwargs.get("cache"))
    return int(cache.get_seq_length()) if cache is not None and hasattr(cache, "get_seq_length") else 0


def _positions(positions: Sequence[int] | int | None) -> list[int] | None:
    if positions is None:
        return None
    plist = [positions] if isinstance(positions, int) else list(positions)
    for p in plist:
        if not isinstance(p, int) or isinstance(p, bool) or p < 0:
            raise ValueError(f"positions must be non-negative integers (absolute positions), got {p!r}")
    if not plist:
        raise ValueError("positions is empty: pass None for every position or at least one index")
    return sorted(set(plist))


def _heads_of(model: nn.Module, heads: Sequence[int] | int | None) -> list[int] | None:
    if heads is None:
        return None
    n = num_heads(model)
    hlist = [heads] if isinstance(heads, int) else list(heads)
    for h in hlist:
        if not isinstance(h, int) or isinstance(h, bool):
            raise TypeError(f"heads must be integers, got {h!r}")
        if not 0 <= h < n:
            raise ValueError(f"head {h} out of range: the model has {n} heads per layer (0..{n - 1})")
    if not hlist:
        raise ValueError("heads is empty: name at least one head")
    return sorted(set(hlist))


class _HeadAblation:
    """The capture editor of ``ablate_heads``: replaces chosen heads' outputs in chosen layers."""

    def __init__(self) -> None:
        self.plans: dict[int, list[tuple[list[int], str, Tensor | None]]] = {}
        self.enabled = True
        self.generator = torch.Generator()

    def edit_inputs(self, layer, stack, query, key, value):
        return query, key, value

    def edit_output(self, layer: int, stack: str, output: Tensor, q_start: int) -> Tensor:
        plans = self.plans.get(layer) if self.enabled and stack in ("main", "decoder") else None
        if not plans:
            return output
        out = output.clone()
        batch, q_len = out.shape[:2]
        for heads, how, ref in plans:
            if how == "zero":
                out[:, :, heads] = 0
            elif how == "mean":  # ref: [heads, d_head]
                out[:, :, heads] = ref.to(out.dtype)
            else:  # resample: ref [rows, n_ref, heads, d_head]
                if q_start + q_len > ref.shape[1]:
                    raise ValueError(
                        f"resample ablation needs reference activations at positions up to {q_start + q_len - 1}, "
                        f"but the reference batch has {ref.shape[1]} positions; pass a longer reference batch")
                rows = torch.randint(ref.shape[0], (batch,), generator=self.generator)
                out[:, :, heads] = ref[rows, q_start:q_start + q_len].to(out.device, out.dtype)
        return out


class Intervention:
    """The object ``with ats.intervene(model) as iv:`` gives: edits hold for every forward (or ``generate()``) in
    the block, in the order they were made; all of them end with the block. See :func:`intervene`."""

    def __init__(self, model: nn.Module, *, tokenizer: Any = None, seed: int = 0) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a Hugging Face transformer (torch.nn.Module), got {type(model).__name__}")
        self.model = model
        self.tokenizer = tokenizer
        self._stack: contextlib.ExitStack | None = None
        self._handles: list[Any] = []
        self._ablation = _HeadAblation()
        self._ablation.generator.manual_seed(seed)
        self._capture: capture | None = None
        self._offset = 0

    # --- the scope ----------------------------------------------------------------------------------------------
    def __enter__(self) -> Intervention:
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(scoped_model(self.model))
            stack.callback(self._remove_hooks)
            self._handles.append(self.model.register_forward_pre_hook(self._note_offset, with_kwargs=True))
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._ablation.plans.clear()

    def _note_offset(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self._offset = _cache_offset(kwargs)

    def _active(self, what: str) -> contextlib.ExitStack:
        if self._stack is None:
            raise RuntimeError(f"iv.{what}(...) works inside the `with ats.intervene(model) as iv:` block only")
        return self._stack

    @contextlib.contextmanager
    def suspended(self):
        """Within this block the model runs without the edits (to read reference activations, for instance)."""
        saved = list(self._handles[1:])
        for handle in saved:
            handle.remove()
        self._ablation.enabled = False
        try:
            yield
        finally:
            self._ablation.enabled = True
            for handle in saved:  # re-install in the same order
                self._handles.remove(handle)
            for site, layer, fn in [getattr(h, "_attnscope_edit") for h in saved]:
                self._install(site, layer, fn)

    def _install(self, site: str, layer: int, fn) -> None:
        handle = install_edit(self.model, site, layer, fn)
        handle._attnscope_edit = (site, layer, fn)  # type: ignore[attr-defined]
        self._handles.append(handle)

    # --- head ablation ----------------------------------------------------------------------------------------
    def ablate_heads(self, heads: Mapping[int, Sequence[int] | int], how: str = "zero", *,
                     reference: Any = None) -> Intervention:
        """Ablate heads: ``{layer: [head, ...]}``. ``how``: ``"zero"`` (the head's output before the output
        projection set to 0), ``"mean"`` (set to its mean over the non-padding tokens of ``reference``) or
        ``"resample"`` (set to its output at the same position in a randomly drawn example of ``reference``,
        drawn again at every forward from the scope's seeded generator). ``reference``: inputs as everywhere
        (strings need ``tokenizer=`` of :func:`intervene`); its activations are read without the scope's edits."""
        stack = self._active("ablate_heads")
        if how not in _HOW:
            raise ValueError(f"unknown ablation {how!r}: use one of {', '.join(_HOW)}")
        if not isinstance(heads, Mapping) or not heads:
            raise TypeError(f"heads must be a dict {{layer: [head, ...]}} with at least one layer, got {heads!r}")
        plan = {check_layer(self.model, layer): _heads_of(self.model, hs) for layer, hs in heads.items()}
        if how != "zero" and reference is None:
            raise ValueError(f"how={how!r} takes its values from a reference batch: pass reference=<inputs>")
        if how == "zero" and reference is not None:
            raise ValueError("how='zero' takes no reference batch; use how='mean' or 'resample' with reference=")
        refs = self._reference(reference, sorted(plan), how) if reference is not None else {}
        if self._capture is None:
            self._capture = stack.enter_context(capture(self.model, record=False, editors=[self._ablation]))
        for layer, hs in plan.items():
            ref = refs.get(layer)
            if ref is not None:
                ref = ref[..., hs, :]
            self._ablation.plans.setdefault(layer, []).append((hs, how, ref))
        return self

    def _reference(self, reference: Any, layers: list[int], how: str) -> dict[int, Tensor]:
        enc = model_inputs(reference, tokenizer=self.tokenizer, model=self.model, device=model_device(self.model),
                           what="reference")
        with self.suspended():
            acts = capture_activations(self.model, enc.kwargs, sites=("head_out",), layers=layers).get("head_out")
        out = {}
        for i, layer in enumerate(layers):
            x = acts[i]  # [batch, n, heads, d_head]
            if how == "mean":
                w = enc.attention_mask.to(x.device, torch.float64)[:, :, None, None]
                out[layer] = (x.double() * w).sum((0, 1)) / w.sum((0, 1))
            else:
                out[layer] = x
        return out

    # --- sites ------------------------------------------------------------------------------------------------
    def set(self, site: str, layer: int, value: Tensor | float, *, positions: Sequence[int] | int | None = None,
            heads: Sequence[int] | int | None = None) -> Intervention:
        """Replace the activation at ``site`` of ``layer`` with ``value`` (broadcast to ``[batch, positions,
        dim]``, or ``[batch, positions, heads, d_head]`` for ``head_out``), at the absolute ``positions`` (None:
        all) and, for ``head_out``, the ``heads`` (None: all)."""
        self._site_edit("set", site, layer, value, positions, heads)
        return self

    def add(self, site: str, layer: int, vector: Tensor | float, *, positions: Sequence[int] | int | None = None,
            heads: Sequence[int] | int | None = None) -> Intervention:
        """Add ``vector`` (a steering vector ``[dim]``, or anything that broadcasts like ``set``'s value) to the
        activation at ``site`` of ``layer``."""
        self._site_edit("add", site, layer, vector, positions, heads)
        return self

    def _site_edit(self, kind: str, site: str, layer: int, value: Any, positions: Any, heads: Any) -> None:
        self._active(kind)
        check_site(site)
        layer = check_layer(self.model, layer)
        plist = _positions(positions)
        hlist = _heads_of(self.model, heads)
        if hlist is not None and site != "head_out":
            raise ValueError(f"heads= applies to site 'head_out' only, not {site!r}")
        if not isinstance(value, Tensor):
            value = torch.as_tensor(value, dtype=torch.float32)
        value = value.detach()

        def fn(x: Tensor) -> Tensor:
            idx = self._local(plist, x.shape[1])
            part = x[:, idx] if idx is not None else x
            if hlist is not None:
                part = part[:, :, hlist]
            try:
                v = value.to(x.device, x.dtype).expand_as(part) if value.dim() <= part.dim() else None
            except RuntimeError:
                v = None
            if v is None:
                raise ValueError(f"iv.{kind}: a value of shape {tuple(value.shape)} does not broadcast to the "
                                 f"selected activation of shape {tuple(part.shape)} at {site!r} layer {layer}")
            new = v if kind == "set" else part + v
            if idx is None and hlist is None:
                return new.clone() if kind == "set" else new
            out = x.clone()
            if hlist is None:
                out[:, idx] = new
            elif idx is None:
                out[:, :, hlist] = new
            else:
                out[:, idx[:, None], torch.tensor(hlist, device=x.device)] = new
            return out

        self._install(site, layer, fn)

    def _local(self, positions: list[int] | None, n: int) -> Tensor | None:
        """Indices into the current forward's positions of the absolute ``positions`` (those inside it)."""
        if positions is None:
            return None
        start = self._offset
        return torch.tensor([p - start for p in positions if start <= p < start + n], dtype=torch.long)

    def clear(self) -> Intervention:
        """Remove every edit made so far; the scope stays open."""
        self._active("clear")
        for handle in self._handles[1:]:
            handle.remove()
        del self._handles[1:]
        self._ablation.plans.clear()
        return self


def intervene(model: nn.Module, *, tokenizer: Any = None, seed: int = 0) -> Intervention:
    """A scope in which ``model``'s heads can be ablated and its activations set or steered.

    ``with ats.intervene(model) as iv:`` then ``iv.ablate_heads({1: [0]}, how="zero" | "mean" | "resample",
    reference=...)``, ``iv.set(site, layer, value, positions=None, heads=None)``, ``iv.add(site, layer, vector)``;
    every forward or ``model.generate()`` inside the block runs with the edits. Sites are those of
    ``capture_activations`` (``resid_pre``, ``resid_mid``, ``resid_post``, ``attn_out``, ``head_out``, ``mlp_out``,
    ``mlp_hidden``); positions are absolute (during ``generate()`` they count the prompt). The model is in eval
    mode with frozen parameters inside; everything is restored on exit, also after an exception.
    ``tokenizer`` turns string reference batches into ids; ``seed`` seeds resample ablation.
    """
    return Intervention(model, tokenizer=tokenizer, seed=seed)
