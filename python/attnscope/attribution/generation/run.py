"""The generation engine: one teacher-forced sequence, its step values, and all steps' gradients or occlusions."""

from __future__ import annotations

import inspect
import warnings

import torch
from torch import Tensor, nn

from ...ops import quadrature_rule
from ..chunking import GENERATION_MAX_TOKENS, choose_chunk, progress_bar
from .head_hooks import HeadGather, HeadSplit
from .step_target import StepTarget

# Progress bar by default from this many chunks on.
PROGRESS_FROM = 2  # chunks; with progress=None the bar still waits PROGRESS_DELAY_S

__all__ = ["GenerationRun", "NoBatching", "step_chunks", "supports_cache"]


class GenerationRun:
    """One teacher-forced sequence ``[N = P + T]`` and its step values, gradients and perturbations."""

    def __init__(self, model: nn.Module, embeddings: nn.Module, prompt_ids: list[int], generated: list[int],
                 target: StepTarget, device: torch.device, *, tokenizer: object = None, vocab: int = 0,
                 engine: str = "auto") -> None:
        self.model, self.embeddings, self.target, self.device = model, embeddings, target, device
        self.tokenizer, self.vocab, self.engine = tokenizer, vocab, engine
        self.P, self.T = len(prompt_ids), len(generated)
        self.N = self.P + self.T
        self.ids = torch.tensor(prompt_ids + generated, dtype=torch.long, device=device)
        self.tokens = self.ids[self.P:]  # [T] generated tokens
        with torch.no_grad():
            self.x = embeddings(self.ids[None])[0].detach()  # [N, H] the attributed activations
        self.engine_used = ""
        self.n_forwards = 0
        params = inspect.signature(model.forward).parameters
        self._keep = "logits_to_keep" in params
        # transformers 5.24 renamed past_key_values to cache (the old name warns)
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        self.head = head if isinstance(head, nn.Module) else None

    def configure(self, batch_size, memory_budget, progress) -> None:
        self.rows = choose_chunk(batch_size, memory_budget, self.model, self.N, 0, None,
                                 max_tokens=GENERATION_MAX_TOKENS)
        self.progress = progress

    def bar(self, total: int, desc: str):
        return progress_bar(total, desc, "chunk", self.progress, PROGRESS_FROM)

    def step_values(self) -> Tensor:
        """The value of every step at the input ``[T]`` (kept as ``step_scores``)."""
        with torch.no_grad():
            self.step_scores = self.values(self.x[None])[0]
        return self.step_scores

    def causal_mask(self) -> Tensor:
        """``[T, N]``: 1 where source position ``s`` can influence step ``t`` (``s <= P + t - 1``)."""
        s = torch.arange(self.N)
        return (s[None, :] < (self.P + torch.arange(self.T))[:, None]).float()

    def _logits(self, inputs_embeds: Tensor, keep: int) -> Tensor:
        """Logits ``[rows, keep, vocab]`` of the last ``keep`` positions."""
        mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=self.device)
        if self._keep:
            out = self.model(inputs_embeds=inputs_embeds, attention_mask=mask, logits_to_keep=keep, use_cache=False)
        else:
            out = self.model(inputs_embeds=inputs_embeds, attention_mask=mask, use_cache=False)
        self.n_forwards += int(inputs_embeds.shape[0])
        logits = getattr(out, "logits", None)
        if not isinstance(logits, Tensor) or logits.dim() != 3:
            raise ValueError(f"{type(self.model).__name__} returns no logits [batch, seq, vocab]; "
                             "attribute_generation needs a causal LM")
        return logits[:, -keep:]

    def values(self, acts: Tensor) -> Tensor:
        """Step values ``[rows, T]`` at full-sequence activations ``acts [rows, N, H]``."""
        logits = self._logits(acts, self.T + 1)[:, : self.T]
        steps = torch.arange(self.T, device=self.device)
        return self.target(logits, steps.expand(acts.shape[0], -1), self.tokens.expand(acts.shape[0], -1))

    # --- gradients of all steps ----------------------------------------------------------------------------
    def gradients(self, engine: str) -> Tensor:
        """``dvalue_t / dx`` ``[T, N, H]`` at the input."""
        return self._weighted_gradients(engine, torch.ones(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64))

    def integrated_gradients(self, engine: str, n_steps: int, integration: str) -> Tensor:
        alphas, weights = quadrature_rule(integration, n_steps)
        avg = self._weighted_gradients(engine, alphas, weights)  # sum_j w_j grad(alpha_j x), baseline 0
        return (avg * self.x).sum(-1)

    def _weighted_gradients(self, engine: str, alphas: Tensor, weights: Tensor) -> Tensor:
        """``sum_j weights_j * dvalue_t/dx (alphas_j * x)`` ``[T, N, H]`` (zero-embedding baseline)."""
        x = self.x
        out = torch.zeros(self.T, self.N, x.shape[-1], dtype=torch.float32 if x.dtype != torch.float64 else x.dtype,
                          device=self.device)
        if engine in ("auto", "is_grads_batched"):
            try:
                self._batched(x, alphas, weights, out, strict=engine == "auto")
                self.engine_used = "is_grads_batched"
                return out
            except NoBatching as err:
                if engine == "is_grads_batched":
                    raise RuntimeError(f"is_grads_batched does not run on {type(self.model).__name__}: {err}") from err
                out.zero_()
        self._expanded(x, alphas, weights, out)
        self.engine_used = "expanded"
        return out

    def _batched(self, x: Tensor, alphas: Tensor, weights: Tensor, out: Tensor, strict: bool) -> None:
        # Rows of one forward: interpolation points; grad vectors per vmapped backward: a chunk of steps, whose
        # forward is cut after the chunk's last predicting position (see step_chunks).
        k = max(1, min(len(alphas), self.rows))
        groups = [(g, min(len(alphas), g + k)) for g in range(0, len(alphas), k)]
        chunks = step_chunks(self.P, self.T, k, max(1, self.rows // k), self.model)
        first = True
        with self.bar(len(groups) * len(chunks), "generation gradients") as bar:
            for a, b in chunks:
                length = self.P + b - 1  # positions 0 .. P + b - 2: step b - 1 is predicted at P + b - 2
                steps = torch.arange(a, b, device=self.device)
                for g0, g1 in groups:
                    al = alphas[g0:g1].to(x.dtype).to(self.device)
                    acts = (al[:, None, None] * x[None, :length]).requires_grad_(True)
                    w = weights[g0:g1].to(self.device)
                    with torch.enable_grad(), HeadSplit(self.head) as split:
                        logits = self._logits(acts, b - a)  # positions P + a - 1 .. P + b - 2
                        vals = self.target(logits, steps.expand(g1 - g0, -1), self.tokens[steps].expand(g1 - g0, -1))
                        idx = torch.arange(b - a, device=self.device)
                        if split.ok:
                            # The head is cheap to differentiate once: every step's value depends on its own
                            # position only, so one plain backward gives d value / d hidden for all steps; only the
                            # body's backward is vmapped (no T-fold dense backward through the vocabulary).
                            (g_hidden,) = torch.autograd.grad((vals * w.to(vals.dtype)[:, None]).sum(), split.leaf)
                            pos = split.leaf.shape[1] - (b - a) + idx  # the kept positions are the head's last ones
                            go = torch.zeros(b - a, *split.hidden.shape, dtype=split.hidden.dtype, device=self.device)
                            go[idx, :, pos] = g_hidden[:, pos].transpose(0, 1).to(go.dtype)
                            grads = self._vmapped_grad(split.hidden, acts, go, retain=False, strict=strict and first)
                        else:
                            if split.leaf is not None:  # the head ran more than once: redo without the cut
                                split.close()
                                logits = self._logits(acts, b - a)
                                vals = self.target(logits, steps.expand(g1 - g0, -1),
                                                   self.tokens[steps].expand(g1 - g0, -1))
                            go = torch.zeros(b - a, g1 - g0, b - a, dtype=vals.dtype, device=self.device)
                            go[idx, :, idx] = w.to(vals.dtype)[None, :]
                            grads = self._vmapped_grad(vals, acts, go, retain=False, strict=strict and first)
                    first = False
                    out[a:b, :length] += grads.sum(1).to(out.dtype)
                    bar.update(1)

    @staticmethod
    def _vmapped_grad(vals, acts, go, retain: bool, strict: bool) -> Tensor:
        if not strict:
            return torch.autograd.grad(vals, acts, go, is_grads_batched=True, retain_graph=retain)[0]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                return torch.autograd.grad(vals, acts, go, is_grads_batched=True, retain_graph=retain)[0]
            except (Warning, RuntimeError, NotImplementedError) as err:
                raise NoBatching(str(err).splitlines()[0] if str(err) else type(err).__name__) from err

    def _expanded(self, x: Tensor, alphas: Tensor, weights: Tensor, out: Tensor) -> None:
        """One row per (step, point); a chunk's rows are cut after its last step's predicting position."""
        n = len(alphas)
        points = [(t, j) for t in range(self.T) for j in range(n)]
        c = max(1, self.rows)
        with self.bar((len(points) + c - 1) // c, "generation gradients") as bar:
            for start in range(0, len(points), c):
                chunk = points[start : start + c]
                steps = torch.tensor([t for t, _ in chunk], device=self.device)
                js = torch.tensor([j for _, j in chunk])
                t_max = int(steps.max())
                t_min = int(steps.min())
                length = self.P + t_max  # positions 0 .. P + t_max - 1
                al = alphas[js].to(x.dtype).to(self.device)
                acts = (al[:, None, None] * x[None, :length]).requires_grad_(True)
                keep = t_max - t_min + 1
                rows = torch.arange(len(chunk), device=self.device)
                with torch.enable_grad(), HeadGather(self.head, rows, steps - t_min) as gather:
                    logits = self._logits(acts, keep)  # positions P + t_min - 1 .. P + t_max - 1
                    # Through the head only each row's own position (when the hook could pick it).
                    picked = logits[:, -1] if gather.ok else logits[rows, steps - t_min]
                    vals = self.target(picked, steps, self.tokens[steps])
                    w = weights[js].to(vals.dtype).to(self.device)
                    (grads,) = torch.autograd.grad((vals * w).sum(), acts)
                out.index_add_(0, steps, torch.nn.functional.pad(grads, (0, 0, 0, self.N - length)).to(out.dtype))
                bar.update(1)

    # --- occlusion ---------------------------------------------------------------------------------------------
    def occlusion(self, replacement: int, base_values: Tensor) -> Tensor:
        """``matrix[t, s] = value_t(x) - value_t(x with token s replaced)``; a chunk of sources shares the cache of
        the prefix before its first source."""
        sources = list(range(self.N - 1))  # the last token predicts nothing here
        matrix = torch.zeros(self.T, self.N, dtype=torch.float32, device=self.device)
        c = max(1, self.rows)
        chunks = [sources[i : i + c] for i in range(0, len(sources), c)]
        reuse = supports_cache(self.model)
        self.engine_used = "kv_reuse" if reuse else "full"
        with torch.no_grad(), self.bar(len(chunks), "occlusion") as bar:
            for chunk in chunks:
                s0 = chunk[0]
                ids = self.ids[None].repeat(len(chunk), 1)
                rows = torch.arange(len(chunk), device=self.device)
                ids[rows, torch.tensor(chunk, device=self.device)] = replacement
                vals = self._occluded_values(ids, s0, reuse)  # [c, T - t_first]
                t_first = self.T - vals.shape[1]
                for r, s in enumerate(chunk):
                    matrix[t_first:, s] = (base_values[t_first:].to(vals.dtype) - vals[r]).float()
                bar.update(1)
        return matrix

    def _occluded_values(self, ids: Tensor, s0: int, reuse: bool) -> Tensor:
        """Values ``[c, T - t_first]`` of the steps that ``ids`` (tokens before ``s0`` unchanged) can change: those
        whose predicting position ``P + t - 1`` is at or after ``s0``, from ``t_first`` on."""
        c = ids.shape[0]
        t_first = max(0, s0 - self.P + 1)
        if reuse and s0 > 0:
            prefix = self.model(input_ids=self.ids[None, :s0], use_cache=True)
            self.n_forwards += 1
            cache = getattr(prefix, "cache", None) or prefix.past_key_values
            cache.batch_repeat_interleave(c)
            mask = torch.ones(c, self.N, dtype=torch.long, device=self.device)
            out = self.model(input_ids=ids[:, s0:], attention_mask=mask, use_cache=True, **{self._cache_arg: cache})
            offset = s0  # logits of positions s0 .. N - 1
        else:
            out = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
            offset = 0
        self.n_forwards += c
        steps = torch.arange(t_first, self.T, device=self.device)
        pos = self.P + steps - 1 - offset
        return self.target(out.logits[:, pos], steps.expand(c, -1), self.tokens[steps].expand(c, -1))


def step_chunks(P: int, T: int, rows: int, max_steps: int, model: nn.Module) -> list[tuple[int, int]]:
    """Chunks ``[a, b)`` of steps for the vmapped backward, each with a forward cut at position ``P + b - 2``.

    One chunk (one forward, ``T`` grad vectors over the whole sequence) wastes the backward of every early step on
    positions it cannot see; many chunks pay a forward and the per-pass overhead each. The chunk size minimises a
    cost model in FLOPs: per chunk, ``rows * len * f`` forward plus ``2 * steps * rows * len * f`` backward (``f``
    = 2 x the non-embedding parameters per token) plus a fixed per-pass overhead (about 0.3 ms per layer, as FLOPs
    at 100 GFLOP/s). Tiny models get one chunk; a 12-layer, 768-wide model at P = 16, T = 64 gets chunks of 8
    (about 1.5x fewer FLOPs than one chunk).
    """
    cfg = getattr(model, "config", None)
    layers = int(getattr(cfg, "num_hidden_layers", 0) or getattr(cfg, "n_layer", 0) or 12)
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    emb_params = emb.weight.numel() if isinstance(getattr(emb, "weight", None), Tensor) else 0
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    out_params = out_emb.weight.numel() if isinstance(getattr(out_emb, "weight", None), Tensor) else 0
    body = max(1, sum(p.numel() for p in model.parameters()) - emb_params - out_params)
    f = 2.0 * body
    overhead = layers * 3e7

    def cost(c: int) -> float:
        total = 0.0
        for a in range(0, T, c):
            b = min(T, a + c)
            length = P + b - 1
            total += rows * length * f * (1 + 2 * (b - a)) + 2 * overhead
        return total

    sizes = sorted({min(T, max(1, max_steps)), *[c for c in (1, 2, 4, 8, 16, 32, 64, 128, 256) if c <= max_steps]})
    best = min(sizes, key=lambda c: (cost(c), -c))
    return [(a, min(T, a + best)) for a in range(0, T, best)]


class NoBatching(Exception):
    """is_grads_batched fell back to a per-sample loop (or failed) on this model."""


def supports_cache(model: nn.Module) -> bool:
    """Decoder-only HF models with a DynamicCache that can be repeated over a batch."""
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return False
    try:
        from transformers.cache_utils import DynamicCache
    except ImportError:
        return False
    return hasattr(DynamicCache, "batch_repeat_interleave") and getattr(getattr(model, "config", None), "use_cache", True) is not False
