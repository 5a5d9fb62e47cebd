"""Generation attribution: which prompt and earlier generated tokens produced each generated token.

One teacher-forced pass over ``prompt + generated`` serves every generated token: the value of step ``t`` (the
probability, log-probability or logit of generated token ``t``, or a contrast) is read at position ``P + t - 1``,
and causality makes the tokens after that position irrelevant to it. The gradient methods then need one backward
per step, and they are run together:

* ``is_grads_batched`` (the default engine): one forward; the backward of all steps runs vmapped over the one-hot
  vectors of a chunk of steps. It is used when it runs without torch's per-sample batching fallback: the first chunk
  runs with warnings turned into errors, and any warning or error switches to
* the expanded batch: a chunk of steps becomes a chunk of rows (one copy of the sequence per step, cut after the
  chunk's last needed position), one forward and one backward per chunk.

Integrated gradients interpolates the whole sequence; one forward per group of interpolation points serves every
step (``is_grads_batched``), so the per-token loop's ``T * n_steps`` forwards become ``n_steps``. Occlusion replaces
one source token at a time and reads every step from one forward per row; rows share the key/value cache of the
unchanged prefix. Never a generate + backward per token.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..ops import QUADRATURE_RULES, quadrature_rule
from ..results.generation import GenerationAttribution
from .checks import check_int
from .engine import available_memory, estimate_row_bytes, scoped_model
from .inputs import token_strings
from .perturbation import resolve_replacement
from .targets import _token_id

GENERATION_METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "attention", "occlusion")
STEP_TARGETS = ("prob", "logprob", "logit")
ENGINES = ("auto", "is_grads_batched", "expanded")
# "auto" rows (sequence copies or vmapped grad vectors) stop growing at this many tokens per chunk.
AUTO_MAX_TOKENS = 8192
DEFAULT_BUDGET_FRACTION = 0.25
# Progress bar by default from this many chunks on.
PROGRESS_FROM = 8

__all__ = ["ENGINES", "GENERATION_METHODS", "STEP_TARGETS", "attribute_generation"]


# --- arguments ---------------------------------------------------------------------------------------------------
def _token_ids(tokenizer: object, text: str, *, special: bool) -> list[int]:
    if tokenizer is None:
        raise ValueError("a text prompt or continuation needs tokenizer=; or pass token ids")
    return [int(i) for i in tokenizer(text, add_special_tokens=special)["input_ids"]]


def _prompt_ids(prompt: object, tokenizer: object) -> list[int]:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError("prompt is empty: give the text (or token ids) that the model continues")
        ids = _token_ids(tokenizer, prompt, special=True)
    elif isinstance(prompt, Tensor):
        if prompt.dim() == 2 and prompt.shape[0] == 1:
            prompt = prompt[0]
        if prompt.dim() != 1 or prompt.dtype.is_floating_point or prompt.dtype == torch.bool:
            raise TypeError(f"prompt ids must be a 1-D integer tensor (or [1, seq]), got {prompt.dtype} "
                            f"of shape {tuple(prompt.shape)}")
        ids = [int(i) for i in prompt.tolist()]
    elif isinstance(prompt, Sequence) and all(isinstance(i, int) and not isinstance(i, bool) for i in prompt):
        ids = [int(i) for i in prompt]
    elif isinstance(prompt, Sequence):
        raise TypeError("attribute_generation explains one prompt at a time: pass a string or a list of token ids, "
                        f"got a {type(prompt).__name__} of {len(prompt)} items")
    else:
        raise TypeError(f"prompt must be a string or token ids, got {type(prompt).__name__}")
    if not ids:
        raise ValueError("prompt is empty (it tokenizes to no token)")
    return ids


def _continuation_ids(continuation: object, tokenizer: object) -> list[int]:
    if isinstance(continuation, str):
        ids = _token_ids(tokenizer, continuation, special=False) if continuation else []
        if not ids:
            raise ValueError(f"continuation {continuation!r} tokenizes to no token: give the text to explain, or "
                             "continuation=None to generate")
        return ids
    if isinstance(continuation, Tensor):
        continuation = continuation.reshape(-1).tolist()
    if isinstance(continuation, Sequence) and all(isinstance(i, int) and not isinstance(i, bool) for i in continuation):
        if not continuation:
            raise ValueError("continuation has no token ids")
        return [int(i) for i in continuation]
    raise TypeError(f"continuation must be a string or token ids, got {type(continuation).__name__}")


class StepTarget:
    """The differentiated value of each step: ``prob``, ``logprob``, ``logit`` of the generated token, or
    ``("contrast", alternative)``: ``logprob(generated) - logprob(alternative)`` (equal to the logit difference)."""

    def __init__(self, target: object, tokenizer: object, n_steps: int, vocab: int) -> None:
        self.alternative: Tensor | None = None
        if isinstance(target, str) and target in STEP_TARGETS:
            self.kind = target
        elif isinstance(target, tuple) and len(target) == 2 and target[0] == "contrast":
            self.kind = "contrast"
            alt = target[1]
            alts = list(alt) if isinstance(alt, (list, tuple)) else [alt] * n_steps
            if len(alts) != n_steps:
                raise ValueError(f"contrast gives {len(alts)} alternative tokens for {n_steps} generated tokens; "
                                 "give one token, or one per generated token")
            ids = []
            for a in alts:
                a = _token_id(a, tokenizer, "contrast alternative")
                if not 0 <= a < vocab:
                    raise ValueError(f"contrast alternative token {a} out of range: the vocabulary has {vocab} tokens")
                ids.append(a)
            self.alternative = torch.tensor(ids, dtype=torch.long)
        else:
            raise ValueError(f"unknown target {target!r}: use 'prob', 'logprob', 'logit' or ('contrast', token)")

    def describe(self) -> str:
        return self.kind

    def __call__(self, logits: Tensor, steps: Tensor, tokens: Tensor) -> Tensor:
        """Values ``[...]`` from ``logits [..., vocab]`` of steps ``steps`` whose generated tokens are ``tokens``."""
        logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
        picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        if self.kind == "logit":
            return picked
        if self.kind == "contrast":
            alt = self.alternative.to(logits.device)[steps]
            return picked - logits.gather(-1, alt.unsqueeze(-1)).squeeze(-1)
        lse = torch.logsumexp(logits, dim=-1)
        return picked - lse if self.kind == "logprob" else torch.exp(picked - lse)


# --- the public function ---------------------------------------------------------------------------------------
def attribute_generation(
    model: nn.Module,
    tokenizer: object,
    prompt: object,
    *,
    max_new_tokens: int = 20,
    continuation: object = None,
    method: str = "saliency",
    target: object = "prob",
    generation_kwargs: dict | None = None,
    batch_size: int | str = "auto",
    n_steps: int = 32,
    integration: str = "gausslegendre",
    replacement_token: int | str | None = None,
    memory_budget: int | None = None,
    engine: str = "auto",
    progress: bool | None = None,
) -> GenerationAttribution:
    """Attribute every generated token of a causal language model to the prompt and the earlier generated tokens.

    Args:
        model: a Hugging Face causal LM (decoder-only: ``*ForCausalLM``, ``GPT2LMHeadModel``...).
        tokenizer: its tokenizer (for text prompts and continuations, and the token strings); may be None when
            ``prompt`` and ``continuation`` are token ids.
        prompt: one prompt, a string (tokenized with the tokenizer's special tokens, e.g. BOS) or token ids.
        max_new_tokens: tokens to generate (greedy unless ``generation_kwargs`` say otherwise).
        continuation: explain this text (or ids, tokenized without special tokens) instead of generating.
        method: ``saliency`` (``|grad|`` summed over the hidden axis), ``input_x_gradient``,
            ``integrated_gradients`` (zero-embedding baseline, ``n_steps`` points of ``integration``),
            ``attention`` (head- and layer-mean attention of the predicting position, captured exactly), or
            ``occlusion`` (value drop when one source token is replaced by ``replacement_token``).
        target: the value of each step: ``prob`` (default), ``logprob``, ``logit``, or ``("contrast", token)`` for
            ``logprob(generated) - logprob(token)`` (one alternative, or one per generated token).
        generation_kwargs: extra arguments of ``model.generate`` (default greedy, ``do_sample=False``).
        batch_size: steps (rows) per backward, or "auto" from ``memory_budget``.
        memory_budget: bytes one chunk may use; default a quarter of the available memory.
        engine: ``auto`` (``is_grads_batched`` if it runs without a batching fallback, else ``expanded``), or
            either one forced.
        progress: a progress bar over chunks; None shows it for long runs only.

    Returns:
        :class:`~attnscope.results.GenerationAttribution`: ``matrix [generated, prompt + generated]`` (zero right of
        the diagonal), ``prompt_tokens``, ``generated_tokens``, ``step_scores``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (a Hugging Face causal LM), got {type(model).__name__}")
    cfg = getattr(model, "config", None)
    if getattr(cfg, "is_encoder_decoder", False):
        raise ValueError(f"{type(model).__name__} is an encoder-decoder model; attribute_generation explains "
                         "decoder-only causal language models")
    if method not in GENERATION_METHODS:
        raise ValueError(f"unknown method {method!r} for generation; use one of {', '.join(GENERATION_METHODS)}")
    check_int("max_new_tokens", max_new_tokens, 1)
    check_int("n_steps", n_steps, 1)
    if integration not in QUADRATURE_RULES:
        raise ValueError(f"unknown integration {integration!r}; use one of {', '.join(QUADRATURE_RULES)}")
    if integration == "riemann_trapezoid" and n_steps < 2:
        raise ValueError("integration='riemann_trapezoid' needs n_steps >= 2")
    if batch_size != "auto":
        check_int("batch_size", batch_size, 1)
    if memory_budget is not None:
        check_int("memory_budget", memory_budget, 1)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    if generation_kwargs is not None and not isinstance(generation_kwargs, dict):
        raise TypeError(f"generation_kwargs must be a dict, got {type(generation_kwargs).__name__}")
    if continuation is not None and generation_kwargs:
        raise ValueError("generation_kwargs apply to generation only; drop them when a continuation is given")
    if replacement_token is not None and method != "occlusion":
        raise ValueError(f"replacement_token applies to method='occlusion' only, not {method!r}")
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if not isinstance(embeddings, nn.Module):
        raise TypeError(f"{type(model).__name__} has no input embeddings (get_input_embeddings()); "
                        "attribute_generation needs a Hugging Face causal LM")
    vocab = int(getattr(cfg, "vocab_size", 0) or embeddings.weight.shape[0])

    prompt_ids = _prompt_ids(prompt, tokenizer)
    for i in prompt_ids:
        if not 0 <= i < vocab:
            raise ValueError(f"prompt token id {i} out of range: the vocabulary has {vocab} tokens")
    device = embeddings.weight.device
    with scoped_model(model):
        if continuation is None:
            generated = _generate(model, tokenizer, prompt_ids, max_new_tokens, generation_kwargs or {}, device)
        else:
            generated = _continuation_ids(continuation, tokenizer)
            for i in generated:
                if not 0 <= i < vocab:
                    raise ValueError(f"continuation token id {i} out of range: the vocabulary has {vocab} tokens")
        step_target = StepTarget(target, tokenizer, len(generated), vocab)
        run = _Run(model, embeddings, prompt_ids, generated, step_target, device)
        run.configure(batch_size, memory_budget, progress)
        with torch.no_grad():
            step_scores = run.values(run.x[None])[0]
        if method == "saliency":
            matrix = run.gradients(engine).abs().sum(-1)
        elif method == "input_x_gradient":
            matrix = (run.gradients(engine) * run.x).sum(-1)
        elif method == "integrated_gradients":
            matrix = run.integrated_gradients(engine, n_steps, integration)
        elif method == "attention":
            matrix = run.attention()
        else:
            matrix = run.occlusion(resolve_replacement(replacement_token, tokenizer, model, vocab, "replacement_token"),
                                   step_scores)

    matrix = matrix.float() * run.causal_mask().to(matrix.device)
    return GenerationAttribution(
        matrix=matrix.detach().cpu(),
        prompt_ids=torch.tensor(prompt_ids, dtype=torch.long),
        generated_ids=torch.tensor(generated, dtype=torch.long),
        prompt_tokens=token_strings(tokenizer, prompt_ids),
        generated_tokens=token_strings(tokenizer, generated),
        step_scores=step_scores.detach().float().cpu(),
        method=method,
        target=step_target.describe(),
        engine=run.engine_used,
        n_forwards=run.n_forwards,
    )


def _generate(model, tokenizer, prompt_ids, max_new_tokens, generation_kwargs, device) -> list[int]:
    if not hasattr(model, "generate"):
        raise TypeError(f"{type(model).__name__} cannot generate (no .generate); pass continuation=")
    kwargs = {"max_new_tokens": max_new_tokens, "do_sample": False}
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(tokenizer, "eos_token_id", None)
    if pad is not None:
        kwargs["pad_token_id"] = pad
    kwargs.update(generation_kwargs)
    ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
    generated = [int(i) for i in out[0, len(prompt_ids):].tolist()]
    if not generated:
        raise ValueError("the model generated no token (did generation stop at once?); pass continuation=")
    return generated


# --- the engine ------------------------------------------------------------------------------------------------
class _Run:
    """One teacher-forced sequence ``[N = P + T]`` and its step values, gradients and perturbations."""

    def __init__(self, model, embeddings, prompt_ids, generated, target, device) -> None:
        self.model, self.embeddings, self.target, self.device = model, embeddings, target, device
        self.P, self.T = len(prompt_ids), len(generated)
        self.N = self.P + self.T
        self.ids = torch.tensor(prompt_ids + generated, dtype=torch.long, device=device)
        self.tokens = self.ids[self.P:]  # [T] generated tokens
        with torch.no_grad():
            self.x = embeddings(self.ids[None])[0].detach()  # [N, H] the attributed activations
        self.engine_used = ""
        self.n_forwards = 0
        import inspect

        params = inspect.signature(model.forward).parameters
        self._keep = "logits_to_keep" in params
        # transformers 5.24 renamed past_key_values to cache (the old name warns)
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        self.head = head if isinstance(head, nn.Module) else None

    def configure(self, batch_size, memory_budget, progress) -> None:
        if batch_size != "auto":
            self.rows = int(batch_size)
        else:
            budget = memory_budget if memory_budget is not None else int(DEFAULT_BUDGET_FRACTION * available_memory())
            by_memory = budget // max(1, estimate_row_bytes(self.model, self.N, 0))
            self.rows = int(max(1, min(by_memory, AUTO_MAX_TOKENS // self.N)))
        self.progress = progress

    def _bar(self, total: int, desc: str):
        from tqdm.auto import tqdm

        show = total >= PROGRESS_FROM if self.progress is None else bool(self.progress)
        return tqdm(total=total, desc=f"attnscope {desc}", unit="chunk", disable=not show, leave=False)


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
            except _NoBatching as err:
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
        with self._bar(len(groups) * len(chunks), "generation gradients") as bar:
            for a, b in chunks:
                length = self.P + b - 1  # positions 0 .. P + b - 2: step b - 1 is predicted at P + b - 2
                steps = torch.arange(a, b, device=self.device)
                for g0, g1 in groups:
                    al = alphas[g0:g1].to(x.dtype).to(self.device)
                    acts = (al[:, None, None] * x[None, :length]).requires_grad_(True)
                    w = weights[g0:g1].to(self.device)
                    with torch.enable_grad(), _HeadSplit(self.head) as split:
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
                raise _NoBatching(str(err).splitlines()[0] if str(err) else type(err).__name__) from err

    def _expanded(self, x: Tensor, alphas: Tensor, weights: Tensor, out: Tensor) -> None:
        """One row per (step, point); a chunk's rows are cut after its last step's predicting position."""
        n = len(alphas)
        points = [(t, j) for t in range(self.T) for j in range(n)]
        c = max(1, self.rows)
        with self._bar((len(points) + c - 1) // c, "generation gradients") as bar:
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
                with torch.enable_grad(), _HeadGather(self.head, rows, steps - t_min) as gather:
                    logits = self._logits(acts, keep)  # positions P + t_min - 1 .. P + t_max - 1
                    # Through the head only each row's own position (when the hook could pick it).
                    picked = logits[:, -1] if gather.ok else logits[rows, steps - t_min]
                    vals = self.target(picked, steps, self.tokens[steps])
                    w = weights[js].to(vals.dtype).to(self.device)
                    (grads,) = torch.autograd.grad((vals * w).sum(), acts)
                out.index_add_(0, steps, torch.nn.functional.pad(grads, (0, 0, 0, self.N - length)).to(out.dtype))
                bar.update(1)

    # --- attention ---------------------------------------------------------------------------------------------
    def attention(self) -> Tensor:
        from ..api import capture_attention

        res = capture_attention(self.model, {"input_ids": self.ids[None]}, reduce="mean")
        self.n_forwards += 1
        w = res.weights  # [layer, batch, query, key], head mean
        rows = self.P - 1 + torch.arange(self.T, device=w.device)
        self.engine_used = "capture"
        return w[:, 0, rows, :].float().mean(0)

    # --- occlusion ---------------------------------------------------------------------------------------------
    def occlusion(self, replacement: int, base_values: Tensor) -> Tensor:
        """``matrix[t, s] = value_t(x) - value_t(x with token s replaced)``; a chunk of sources shares the cache of
        the prefix before its first source."""
        sources = list(range(self.N - 1))  # the last token predicts nothing here
        matrix = torch.zeros(self.T, self.N, dtype=torch.float32, device=self.device)
        c = max(1, self.rows)
        chunks = [sources[i : i + c] for i in range(0, len(sources), c)]
        reuse = _supports_cache(self.model)
        self.engine_used = "kv_reuse" if reuse else "full"
        with torch.no_grad(), self._bar(len(chunks), "occlusion") as bar:
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


class _HeadHook:
    """A forward pre-hook on the LM head (the output embeddings) for one forward: on the head's first call with a
    tensor input, ``_swap`` may hand the head another input. ``calls`` counts the head's calls; the hook is removed
    on exit, also after errors."""

    def __init__(self, head: nn.Module | None) -> None:
        self.head = head
        self.calls = 0
        self._handle = None

    def _swap(self, hidden: Tensor) -> Tensor | None:
        raise NotImplementedError

    def _pre(self, module: nn.Module, args: tuple) -> tuple | None:
        self.calls += 1
        if self.calls > 1 or not args or not isinstance(args[0], Tensor):
            return None
        new = self._swap(args[0])
        return None if new is None else (new, *args[1:])

    def __enter__(self):
        if self.head is not None:
            self._handle = self.head.register_forward_pre_hook(self._pre)
        return self

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def __exit__(self, *exc: object) -> None:
        self.close()


class _HeadSplit(_HeadHook):
    """Cuts the graph at the LM head's input: records the input ``hidden`` (the body's graph ends there) and hands
    the head a detached leaf copy ``leaf`` (the head's graph starts there). ``ok`` says the head ran exactly once on
    a ``[rows, K, H]`` input; otherwise the caller differentiates through the whole graph as usual."""

    def __init__(self, head: nn.Module | None) -> None:
        super().__init__(head)
        self.hidden: Tensor | None = None
        self.leaf: Tensor | None = None

    def _swap(self, hidden: Tensor) -> Tensor | None:
        if not hidden.requires_grad:
            return None
        self.hidden = hidden
        self.leaf = hidden.detach().requires_grad_(True)
        return self.leaf

    @property
    def ok(self) -> bool:
        return self.calls == 1 and self.leaf is not None and self.leaf.dim() == 3


class _HeadGather(_HeadHook):
    """Hands the LM head only row ``i``'s position ``index[i]`` of its input (``[rows, 1, H]``): each expanded row
    needs the logits of one position, not of every kept one. ``ok`` says it happened (the head ran once on a
    ``[rows, K, H]`` input); otherwise the logits are as usual."""

    def __init__(self, head: nn.Module | None, rows: Tensor, index: Tensor) -> None:
        super().__init__(head)
        self.rows, self.index = rows, index
        self.gathered = False

    def _swap(self, hidden: Tensor) -> Tensor | None:
        if hidden.dim() != 3 or hidden.shape[0] != self.rows.shape[0]:
            return None
        self.gathered = True
        k = hidden.shape[1]
        return hidden[self.rows, k - 1 - (int(self.index.max()) - self.index)].unsqueeze(1)

    @property
    def ok(self) -> bool:
        return self.calls == 1 and self.gathered


class _NoBatching(Exception):
    """is_grads_batched fell back to a per-sample loop (or failed) on this model."""


def _supports_cache(model: nn.Module) -> bool:
    """Decoder-only HF models with a DynamicCache that can be repeated over a batch."""
    try:
        from transformers.cache_utils import DynamicCache
    except ImportError:
        return False
    return hasattr(DynamicCache, "batch_repeat_interleave") and getattr(getattr(model, "config", None), "use_cache", True) is not False

