"""``attnscope.capture``: a scope in which every attention call of a model is recorded.

On enter, an attention function (and the matching mask function) is registered with transformers'
AttentionInterface / AttentionMaskInterface under a name unique to this scope, every config of the model is
switched to it, and a forward pre-hook on the model notes each forward's inputs (for consumers). On exit, also
after an exception, the configs get their previous implementation back, the registrations and the hook are
removed: no global state survives the scope.

Consumers (``consumers=[...]`` or :meth:`capture.add_consumer`, see :mod:`attnscope.capturing.consumers`) see every
captured attention call; head statistics are one.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..activations.capture import ActivationCapture
from ..arguments import int_list
from ..inputs import model_device
from ..model_lock import acquire
from ..adapters import AttentionSlot, find_attention_modules
from ..adapters.sites import layer_indices
from ..results import ActivationResult, AttentionResult
from . import labels
from .consumers import AttentionEvent, CaptureConsumer, check_consumer
from .editors import AttentionEditor, check_editor
from .function import AttentionCall, CaptureOptions, attend, eager_function_of

_REDUCE = (None, "mean", "max", "sum")
_counter = itertools.count()


@dataclass
class _Piece:
    slot: AttentionSlot
    call: AttentionCall
    q_start: int  # absolute position of the first query row
    k_start: int  # absolute position of key column 0


@dataclass
class _Sequence:
    pieces: dict[tuple[str, int], list[_Piece]] = field(default_factory=lambda: defaultdict(list))


def _configs_of(model: nn.Module) -> list[Any]:
    from transformers import PretrainedConfig

    seen: dict[int, Any] = {}
    for module in model.modules():
        cfg = module.__dict__.get("config")  # a plain attribute; getattr would take nn.Module's slow path each miss
        if isinstance(cfg, PretrainedConfig):
            seen.setdefault(id(cfg), cfg)
            for sub in (getattr(cfg, name, None) for name in getattr(cfg, "sub_configs", {}) or {}):
                if isinstance(sub, PretrainedConfig):
                    seen.setdefault(id(sub), sub)
    return list(seen.values())


def _signature(forward: Any) -> inspect.Signature:
    """The signature of a bound ``forward``, computed once per underlying function (inspect is slow)."""
    func = getattr(forward, "__func__", None)
    if func is None:
        return inspect.signature(forward)
    return _unbound_signature(func)


@functools.lru_cache(maxsize=256)
def _unbound_signature(func: Any) -> inspect.Signature:
    params = list(inspect.signature(func).parameters.values())
    return inspect.Signature(params[1:])  # without self


def _activation_scope(model: nn.Module, spec: Any, tokenizer: Any) -> ActivationCapture | None:
    if spec is None:
        return None
    if isinstance(spec, dict):
        return ActivationCapture(model, tokenizer=tokenizer, **spec)
    return ActivationCapture(model, sites=spec, tokenizer=tokenizer)


class capture:  # noqa: N801  (used as a context manager: `with ats.capture(model) as cap:`)
    """Record the attention of every forward (or ``model.generate``) run inside the ``with`` block.

    Args:
        model: a Hugging Face transformer (``PreTrainedModel``) whose attention goes through AttentionInterface.
        layers: layer indices to capture (negative counts from the end); None = all.
        heads: head indices to keep; None = all.
        reduce: None, "mean", "max" or "sum" over the (selected) heads; drops the head axis.
        topk: keep the k largest weights per query row (``.topk_values``, ``.topk_indices``).
        entropy: keep each row's entropy (``.entropy``).
        grad: record dF/dP of whatever is back-propagated through the captured forward (``.grad``).
        tokenizer: used to fill ``.tokens``.
        query_chunk: query rows per chunk in the C++ loop (None = automatic).
        consumers: objects that see every captured attention call (:class:`~attnscope.capturing.CaptureConsumer`:
            ``needs_probs`` and ``on_attention(event)``); more can join with :meth:`add_consumer`.
        record: False keeps nothing in ``cap.results`` (for scopes that only feed consumers): each layer's output
            is then computed by the model's own attention function and no probabilities are built unless a
            consumer ``needs_probs``.
        activations: also record activations: site name(s) or a dict of :class:`attnscope.activations.
            ActivationCapture` arguments (``{"sites": ("resid_post", "mlp_hidden"), "layers": [0], "reduce":
            "norm"}``); ``cap.activations`` is then the ActivationResult of the last sequence. Pass ``layers=[]``
            (or ``record=False``) to record activations without attention.
        editors: objects that change what heads read or write (:class:`~attnscope.capturing.AttentionEditor`:
            ``edit_inputs`` and ``edit_output``), e.g. the head ablations of ``ats.intervene``.

    After the block, ``cap.result`` is the AttentionResult of the last sequence (one forward, or one
    ``generate()`` assembled into a single matrix) and ``cap.results`` holds all of them.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        layers: Sequence[int] | int | None = None,
        heads: Sequence[int] | int | None = None,
        reduce: str | None = None,
        topk: int | None = None,
        entropy: bool = False,
        grad: bool = False,
        tokenizer: Any = None,
        query_chunk: int | None = None,
        consumers: Sequence[CaptureConsumer] = (),
        record: bool = True,
        activations: Any = None,
        editors: Sequence[AttentionEditor] = (),
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a Hugging Face transformer (torch.nn.Module), got {type(model).__name__}")
        model_device(model)  # refuses a model whose weights are on the meta device
        self._configs = _configs_of(model)  # the configs whose attention function the scope swaps on entry
        if not self._configs:
            raise TypeError(
                f"{type(model).__name__} is not a transformer attnscope can capture: it has no Hugging Face config "
                "(no module carries a transformers PretrainedConfig as .config), and the config selects the attention "
                "function; pass the model itself (e.g. AutoModel.from_pretrained(...)), not a submodule or a plain "
                "torch module"
            )
        self.slots = find_attention_modules(model)
        if not self.slots:
            raise TypeError(
                f"{type(model).__name__} is not a transformer attnscope can capture: it has no attention modules "
                "(modules whose class name ends in 'Attention')"
            )
        if reduce not in _REDUCE:
            raise ValueError(f"unknown reduce {reduce!r}: use one of None, 'mean', 'max', 'sum'")
        if topk is not None and (not isinstance(topk, int) or topk < 1):
            raise ValueError(f"topk must be a positive integer or None, got {topk!r}")
        if query_chunk is not None and (not isinstance(query_chunk, int) or query_chunk < 0):
            raise ValueError(f"query_chunk must be a non-negative integer or None, got {query_chunk!r}")
        if not isinstance(record, bool):
            raise TypeError(f"record must be True or False, got {record!r}")
        if grad and not record:
            raise ValueError("grad=True needs record=True: dF/dP is kept in cap.results")
        if isinstance(consumers, (str, bytes)) or not isinstance(consumers, Sequence):
            raise TypeError(f"consumers must be a list of capture consumers, got {type(consumers).__name__}")
        if grad and reduce == "max":
            raise ValueError("grad=True cannot be combined with reduce='max' (its gradient is not a head reduction)")
        counts: dict[str, int] = defaultdict(int)
        for slot in self.slots.values():
            counts[slot.stack] += 1
        self.stack_sizes = dict(counts)
        n_layers = counts.get("main") or counts.get("encoder") or max(counts.values())
        self.layers = layer_indices(layers, n_layers)
        n_heads = getattr(getattr(model, "config", None), "num_attention_heads", None)
        heads = int_list(heads, "heads")
        if heads is not None:
            if not heads:
                raise ValueError("heads must name at least one head, got an empty list")
            limit = n_heads if isinstance(n_heads, int) else None
            for h in heads:
                if h < 0 or (limit is not None and h >= limit):
                    valid = f"0..{limit - 1}" if limit is not None else "non-negative indices"
                    raise ValueError(f"head {h} out of range: model has {limit} heads ({valid})")
        self.options = CaptureOptions(list(heads) if heads is not None else None, reduce, topk or 0, bool(entropy),
                                      bool(grad), query_chunk or 0, record)
        self.consumers: list[CaptureConsumer] = [check_consumer(c) for c in consumers]
        if isinstance(editors, (str, bytes)) or not isinstance(editors, Sequence):
            raise TypeError(f"editors must be a list of capture editors, got {type(editors).__name__}")
        self.editors: list[AttentionEditor] = [check_editor(e) for e in editors]
        self.model = model
        self.tokenizer = tokenizer
        self.results: list[AttentionResult] = []
        self._sequences: list[_Sequence] = []
        self._positions: dict[tuple[str, int], int] = {}
        self._batch: int | None = None
        self._saved: list[tuple[Any, Any]] = []
        self._registered: list[str] = []
        self.calls = 0
        self.inputs: dict[str, Tensor] | None = None
        self._forward_inputs: dict[str, Tensor] = {}
        self._input_hook: Any = None
        self._release: Any = None
        self._thread: int | None = None
        self._activations = _activation_scope(model, activations, tokenizer)

    def add_consumer(self, consumer: CaptureConsumer) -> CaptureConsumer:
        """Let ``consumer`` see every attention call captured from now on (also inside the block); returns it."""
        self.consumers.append(check_consumer(consumer))
        return consumer

    # --- installation -------------------------------------------------------------------------------------
    def __enter__(self) -> capture:
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface

        if self._release is not None:
            raise RuntimeError("this ats.capture scope is already open: a capture object is entered once")
        # One attnscope scope per model at a time (another thread's call waits here); see attnscope.model_lock.
        self._release = acquire(self.model)
        self._thread = threading.get_ident()
        token = f"attnscope{next(_counter)}"
        try:
            for cfg in self._configs:
                original = cfg.__dict__.get("_attn_implementation_internal")
                self._saved.append((cfg, original))
                name = f"{token}:{original or 'eager'}"
                if name not in self._registered:
                    AttentionInterface.register(name, self._make_function(original, ALL_ATTENTION_FUNCTIONS))
                    mask_fn = ALL_MASK_ATTENTION_FUNCTIONS.get(original or "eager")
                    AttentionMaskInterface.register(name, mask_fn or ALL_MASK_ATTENTION_FUNCTIONS["eager"])
                    self._registered.append(name)
                cfg.__dict__["_attn_implementation_internal"] = name
            self._input_hook = self.model.register_forward_pre_hook(self._note_inputs, with_kwargs=True)
            self._guard_generate()
            if self._activations is not None:
                self._activations.__enter__()
        except BaseException:
            self._uninstall()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._uninstall()
        if exc_type is None:
            self.results = [self._assemble(seq) for seq in self._sequences]
            if self._activations is not None:
                self._activations.__exit__(None, None, None)

    @property
    def activations(self) -> ActivationResult:
        """The ActivationResult of the last sequence (with ``activations=``)."""
        if self._activations is None:
            raise RuntimeError("no activations were asked for: pass ats.capture(model, activations=('resid_post',))")
        return self._activations.result

    def _guard_generate(self) -> None:
        """Refuse beam search inside the scope: reordered caches would scramble the assembled rows."""
        generate = getattr(self.model, "generate", None)
        if generate is None:
            return

        def guarded_generate(*args, **kwargs):
            config = kwargs.get("generation_config") or getattr(self.model, "generation_config", None)
            beams = kwargs.get("num_beams", getattr(config, "num_beams", 1) or 1)
            if beams and beams > 1:
                raise ValueError(
                    f"beam search (num_beams={beams}) is not supported under attnscope.capture yet: beams reorder the "
                    "cache between steps. Use greedy decoding or sampling (num_beams=1)."
                )
            return generate(*args, **kwargs)

        self.model.__dict__["generate"] = guarded_generate
        self._patched_generate = True

    def _uninstall(self) -> None:
        from transformers.masking_utils import AttentionMaskInterface
        from transformers.modeling_utils import AttentionInterface

        if self._input_hook is not None:
            self._input_hook.remove()
            self._input_hook = None
        self._forward_inputs = {}
        if self._activations is not None:
            self._activations.remove()
        if getattr(self, "_patched_generate", False):
            self.model.__dict__.pop("generate", None)
            self._patched_generate = False
        for cfg, original in reversed(self._saved):
            cfg.__dict__["_attn_implementation_internal"] = original
        self._saved.clear()
        for name in self._registered:  # transformers has register() but no public unregister
            AttentionInterface._global_mapping.pop(name, None)
            AttentionMaskInterface._global_mapping.pop(name, None)
        self._registered.clear()
        self._thread = None
        if self._release is not None:
            release, self._release = self._release, None
            release()

    def _note_inputs(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """Forward pre-hook: the tensors of this forward, by argument name (what consumers see as ``inputs``)."""
        if threading.get_ident() != self._thread:  # another thread's forward is not this scope's
            return
        try:
            named = _signature(module.forward).bind_partial(*args, **kwargs).arguments
        except (TypeError, ValueError):  # a forward that takes positional arguments we cannot name
            named = dict(kwargs)
        self._forward_inputs = {k: v for k, v in named.items() if isinstance(v, Tensor)}

    def _make_function(self, original: str | None, interface: Any):
        original_is_eager = original in (None, "eager")
        original_fn = None if original_is_eager else interface[original]

        def attnscope_attention(module, query, key, value, attention_mask, **kwargs):
            fn = original_fn or eager_function_of(module)
            slot = self.slots.get(module)
            # Another thread's forward of this model (outside attnscope) is not this scope's: it runs as it would.
            mine = threading.get_ident() == self._thread
            if not mine or slot is None or (self.layers is not None and slot.layer not in self.layers):
                return fn(module, query, key, value, attention_mask, **kwargs)
            consumers = list(self.consumers)
            for editor in self.editors:
                query, key, value = editor.edit_inputs(slot.layer, slot.stack, query, key, value)
            done = attend(self.options, fn, original_is_eager, module, query, key, value, attention_mask, kwargs,
                          want_probs=any(c.needs_probs for c in consumers))
            output = done.output
            for editor in self.editors:  # causal self-attention: the last query is the last key
                output = editor.edit_output(slot.layer, slot.stack, output, key.shape[2] - query.shape[2])
            self.calls += 1
            if done.call is not None:
                self._record(slot, done.call, query.shape[0])
            if consumers:
                event = AttentionEvent(
                    layer=slot.layer, stack=slot.stack, module=module, query=query.detach(), key=key.detach(),
                    value=value.detach(), output=output.detach(), spec=done.spec.detached(),
                    inputs=dict(self._forward_inputs), probs=done.probs,
                )
                with torch.no_grad():
                    for consumer in consumers:
                        consumer.on_attention(event if consumer.needs_probs else dataclasses.replace(event, probs=None))
            return output, None

        return attnscope_attention

    # --- recording ----------------------------------------------------------------------------------------
    def _record(self, slot: AttentionSlot, call: AttentionCall, batch: int) -> None:
        key = (slot.stack, slot.layer)
        if slot.stack == "cross":
            q_start = self._positions.get(("decoder", slot.layer), 0) - call.q_len
            k_start = 0
        else:
            continuing = call.k_len > call.q_len
            q_start = self._positions.get(key, 0) if continuing else 0
            if not continuing and (slot.stack, slot.layer) in self._current_pieces():
                self._sequences.append(_Sequence())  # a fresh forward starts a new sequence
            if continuing and self._batch is not None and batch != self._batch:
                raise RuntimeError(
                    f"the batch changed from {self._batch} to {batch} between generation steps: beam search and "
                    "other batch-reshaping generation strategies are not supported by attnscope.capture yet; "
                    "use greedy or sampling (num_beams=1)"
                )
            self._positions[key] = q_start + call.q_len
            k_start = q_start + call.q_len - call.k_len  # keys end at the last query (full and sliding caches)
        self._batch = batch
        if not self._sequences:
            self._sequences.append(_Sequence())
        self._sequences[-1].pieces[key].append(_Piece(slot, call, max(q_start, 0), k_start))

    def _current_pieces(self):
        return self._sequences[-1].pieces if self._sequences else {}

    # --- assembly -----------------------------------------------------------------------------------------
    def _assemble(self, seq: _Sequence) -> AttentionResult:
        stacks = sorted({stack for stack, _ in seq.pieces})
        per_stack = {stack: self._assemble_stack(seq, stack) for stack in stacks}
        if set(stacks) <= {"main"}:
            return per_stack["main"]
        # The top level mirrors the encoder (a copy: a result must not contain itself).
        main = dataclasses.replace(per_stack.get("encoder") or next(iter(per_stack.values())))
        main.encoder = per_stack.get("encoder")
        main.decoder = per_stack.get("decoder")
        main.cross = per_stack.get("cross")
        return main

    def _assemble_stack(self, seq: _Sequence, stack: str) -> AttentionResult:
        layers = sorted(layer for s, layer in seq.pieces if s == stack)
        per_layer = [seq.pieces[(stack, layer)] for layer in layers]
        single = all(len(p) == 1 for p in per_layer)
        if single:
            calls = [p[0].call for p in per_layer]

            def stacked(name):
                values = [getattr(c, name) for c in calls]
                return None if any(v is None for v in values) else torch.stack(values)

            grad_sources = [(lambda c=c: c.grad) for c in calls] if self.options.grad else None
            result = AttentionResult(
                weights=stacked("weights"), layers=layers, heads=self.options.heads, reduce=self.options.reduce,
                topk_values=stacked("topk_values"), topk_indices=stacked("topk_indices"),
                entropy=stacked("entropy"), grad_sources=grad_sources,
            )
        else:
            result = self._assemble_generation(per_layer, layers)
        self.attach_inputs(result, stack)
        return result

    def _assemble_generation(self, per_layer: list[list[_Piece]], layers: list[int]) -> AttentionResult:
        n_rows = max(p.q_start + p.call.q_len for pieces in per_layer for p in pieces)
        n_cols = max(n_rows + 1, max(p.k_start + p.call.k_len for pieces in per_layer for p in pieces))
        first = per_layer[0][0].call

        def place(name: str, width) -> Tensor | None:
            ref = getattr(first, name)
            if ref is None:
                return None
            lead = ref.shape[:-2] if name == "weights" else ref.shape[:-2]
            cols = n_cols if width is None else width
            shape = (len(layers), *lead, n_rows, cols) if name != "entropy" else (len(layers), *ref.shape[:-1], n_rows)
            if name == "entropy":
                out = ref.new_zeros(shape)
            elif name == "topk_indices":
                out = torch.full(shape, -1, dtype=ref.dtype, device=ref.device)
            else:
                out = ref.new_zeros(shape)
            for li, pieces in enumerate(per_layer):
                for p in pieces:
                    t = getattr(p.call, name)
                    rows = slice(p.q_start, p.q_start + p.call.q_len)
                    if name == "weights":
                        lo = p.k_start
                        src = t
                        if lo < 0:  # keys before position 0 cannot exist; guard anyway
                            src, lo = t[..., -lo:], 0
                        out[li, ..., rows, lo:lo + src.shape[-1]] = src
                    elif name == "topk_indices":
                        out[li, ..., rows, :] = t + p.k_start
                    elif name == "entropy":
                        out[li, ..., rows] = t
                    else:
                        out[li, ..., rows, :] = t
            return out

        topk = self.options.topk or None
        return AttentionResult(
            weights=place("weights", None), layers=layers, heads=self.options.heads, reduce=self.options.reduce,
            topk_values=place("topk_values", topk), topk_indices=place("topk_indices", topk),
            entropy=place("entropy", None),
        )

    def attach_inputs(self, result: AttentionResult, stack: str = "main") -> None:
        """Fill ``result.input_ids``, ``.attention_mask`` and ``.tokens`` from ``cap.inputs`` (when set), with the
        tokens of its ``stack`` (encoder-decoder models: see :mod:`attnscope.capturing.labels`)."""
        labels.attach_inputs(result, self.inputs, self.tokenizer, stack)

    @property
    def result(self) -> AttentionResult:
        """The AttentionResult of the last recorded sequence."""
        if not self.results:
            if self._saved:
                raise RuntimeError("cap.result is available after the `with ats.capture(...)` block ends")
            if not self.options.record:
                raise RuntimeError(
                    f"capture(record=False) keeps no results: its {len(self.consumers)} consumer(s) received the "
                    f"{self.calls} attention calls"
                )
            raise RuntimeError(
                "nothing was captured: the model's attention did not run through transformers' AttentionInterface "
                "inside the block (no forward ran, or the model does not route attention through the interface)"
            )
        return self.results[-1]
