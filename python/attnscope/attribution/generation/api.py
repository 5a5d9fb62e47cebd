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

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ...results.generation import GenerationAttribution
from .. import catalog
from ..base import check_options, options_class
from ..catalog import check_int
from ..chunking import check_budget
from ...inputs import model_inputs, token_strings
from ..scope import scoped_model
from ...adapters.seq2seq import decoder_start_id, is_encoder_decoder
from .run import GenerationRun
from .seq2seq import Seq2SeqGenerationRun
from .step_target import StepTarget
from ...model_lock import holds_model

ENGINES = ("auto", "is_grads_batched", "expanded")

__all__ = ["ENGINES", "attribute_generation"]


# --- arguments ---------------------------------------------------------------------------------------------------
def _token_ids(tokenizer: object, text: str, *, special: bool) -> list[int]:
    if tokenizer is None:
        raise ValueError("a text prompt or continuation needs tokenizer=; or pass token ids")
    return [int(i) for i in tokenizer(text, add_special_tokens=special)["input_ids"]]


def _prompt_ids(prompt: object, tokenizer: object, model: nn.Module) -> list[int]:
    """One prompt (a string, a 1-D or [1, seq] ids tensor, a list of ids or a tokenizer's output) as checked ids."""
    if isinstance(prompt, str) and not prompt.strip():
        raise ValueError("prompt is empty: give the text (or token ids) that the model continues")
    if isinstance(prompt, Sequence) and not isinstance(prompt, str) and len(prompt) == 0:
        raise ValueError("prompt is empty: give the text (or token ids) that the model continues")
    if isinstance(prompt, Sequence) and not isinstance(prompt, str) and \
            not all(isinstance(i, int) and not isinstance(i, bool) for i in prompt):
        raise TypeError("attribute_generation explains one prompt at a time: pass a string or a list of token ids, "
                        f"got a {type(prompt).__name__} of {len(prompt)} items")
    inputs = model_inputs(prompt, tokenizer=tokenizer, model=model, what="prompt")
    if inputs.batch != 1:
        raise TypeError(f"attribute_generation explains one prompt at a time, got {inputs.batch} of them")
    return inputs.input_ids[0][inputs.attention_mask[0] != 0].tolist()


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


@holds_model
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
    memory_budget: int | None = None,
    engine: str = "auto",
    progress: bool | None = None,
    **options: Any,
) -> GenerationAttribution:
    """Attribute every generated token of a causal language model to the prompt and the earlier generated tokens.

    Args:
        model: a Hugging Face causal LM (decoder-only: ``*ForCausalLM``, ``GPT2LMHeadModel``...) or an
            encoder-decoder model with a language-model head (BART, T5, Marian: ``*ForConditionalGeneration``,
            ``MarianMTModel``), whose prompt is the source text (the encoder's input).
        tokenizer: its tokenizer (for text prompts and continuations, and the token strings); may be None when
            ``prompt`` and ``continuation`` are token ids.
        prompt: one prompt, a string (tokenized with the tokenizer's special tokens, e.g. BOS) or token ids.
        max_new_tokens: tokens to generate (greedy unless ``generation_kwargs`` say otherwise).
        continuation: explain this text (or ids, tokenized without special tokens) instead of generating.
        method: a method of ``ats.list_methods()`` with ``generation=True``: ``saliency`` (``|grad|`` summed over
            the hidden axis), ``input_x_gradient``, ``integrated_gradients`` (zero-embedding baseline),
            ``attention`` (head- and layer-mean attention of the predicting position, captured exactly), or
            ``occlusion`` (value drop when one source token is replaced).
        target: the value of each step: ``prob`` (default), ``logprob``, ``logit``, or ``("contrast", token)`` for
            ``logprob(generated) - logprob(token)`` (one alternative, or one per generated token).
        generation_kwargs: extra arguments of ``model.generate`` (default greedy, ``do_sample=False``).
        batch_size: steps (rows) per backward, or "auto" from ``memory_budget``.
        memory_budget: bytes one chunk may use; default a quarter of the available memory. A budget that cannot hold
            one row of the prompt is a ValueError before generating.
        engine: ``auto`` (``is_grads_batched`` if it runs without a batching fallback, else ``expanded``), or
            either one forced.
        progress: a progress bar over chunks; None shows it for long runs only.
        **options: the method's generation options (the catalog's ``generation_options``):
            integrated_gradients ``n_steps`` (32) and ``integration`` (gausslegendre); occlusion
            ``replacement_token`` (an id or token string; default pad, unk, mask, else 0).

    Returns:
        :class:`~attnscope.results.GenerationAttribution`: ``matrix [generated, prompt + generated]`` (zero right of
        the diagonal), ``prompt_tokens``, ``generated_tokens``, ``step_scores``. Encoder-decoder models: ``matrix
        [generated, source + prefix + generated]``, the columns the source tokens (``prompt_tokens``), the
        decoder's start token (``prefix_tokens``) and the generated tokens (the target prefix of later steps).
    """
    spec, opts, embeddings, vocab = _check_arguments(model, method, max_new_tokens, batch_size, memory_budget,
                                                     engine, generation_kwargs, continuation, options)
    prompt_ids = _prompt_ids(prompt, tokenizer, model)
    device = embeddings.weight.device
    seq2seq = is_encoder_decoder(model)
    start_ids = [decoder_start_id(model)] if seq2seq else []
    # Before generating: the prompt alone must fit one row of the budget (the full sequence is checked when chunked).
    check_budget(memory_budget, model, len(prompt_ids) + len(start_ids), 0)
    with scoped_model(model):
        if continuation is None:
            generated = _generate(model, tokenizer, prompt_ids, max_new_tokens, generation_kwargs or {}, device,
                                  skip=len(start_ids) if seq2seq else len(prompt_ids))
        else:
            generated = _continuation_ids(continuation, tokenizer)
            model_inputs(generated, model=model, what="continuation")  # the normaliser's vocabulary check
        step_target = StepTarget(target, tokenizer, len(generated), vocab)
        if seq2seq:  # columns: the source, the decoder's start token, the generated tokens
            run = Seq2SeqGenerationRun(model, prompt_ids, start_ids, generated, step_target, device,
                                       tokenizer=tokenizer, vocab=vocab, engine=engine)
        else:
            run = GenerationRun(model, embeddings, prompt_ids, generated, step_target, device, tokenizer=tokenizer,
                                vocab=vocab, engine=engine)
        run.configure(batch_size, memory_budget, progress)
        run.step_values()
        matrix = spec.load().explain_generation(run, opts)

    matrix = matrix.float() * run.causal_mask().to(matrix.device)
    return GenerationAttribution(
        matrix=matrix.detach().cpu(),
        prompt_ids=torch.tensor(prompt_ids, dtype=torch.long),
        prefix_ids=torch.tensor(start_ids, dtype=torch.long) if start_ids else None,
        prefix_tokens=token_strings(tokenizer, start_ids),
        generated_ids=torch.tensor(generated, dtype=torch.long),
        prompt_tokens=token_strings(tokenizer, prompt_ids),
        generated_tokens=token_strings(tokenizer, generated),
        step_scores=run.step_scores.detach().float().cpu(),
        method=method,
        target=step_target.describe(),
        engine=run.engine_used,
        n_forwards=run.n_forwards,
    )


def _check_arguments(model, method, max_new_tokens, batch_size, memory_budget, engine, generation_kwargs,
                     continuation, options):
    """Every check that needs no forward; returns the method's entry, its options, the embeddings, the vocabulary."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (a Hugging Face causal LM), got {type(model).__name__}")
    cfg = getattr(model, "config", None)
    spec = catalog.get(method, "generation")
    given = {k: v for k, v in options.items() if v is not None}
    check_options(spec, given, "attribute_generation", spec.generation_options,
                  catalog.all_option_names("generation"))
    opts = options_class(spec, spec.generation_options)(**given)
    spec.load().check_generation(opts)
    check_int("max_new_tokens", max_new_tokens, 1)
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
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if not isinstance(embeddings, nn.Module):
        raise TypeError(f"{type(model).__name__} has no input embeddings (get_input_embeddings()); "
                        "attribute_generation needs a Hugging Face causal LM")
    vocab = int(getattr(cfg, "vocab_size", 0) or embeddings.weight.shape[0])
    return spec, opts, embeddings, vocab


def _generate(model, tokenizer, prompt_ids, max_new_tokens, generation_kwargs, device, skip: int) -> list[int]:
    """Greedy generation; the tokens after the first ``skip`` of the output (the prompt, or the decoder's start)."""
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
    generated = [int(i) for i in out[0, skip:].tolist()]
    if not generated:
        raise ValueError("the model generated no token (did generation stop at once?); pass continuation=")
    return generated


