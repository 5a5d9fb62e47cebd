"""Finding the word-embedding layer of a Hugging Face model, per family, with a generic fallback."""

from __future__ import annotations

from torch import nn

# Attribute paths of the word (token) embeddings, relative to the base model, per family. Position and token-type
# embeddings are separate modules in all of them, so hooking these outputs leaves them as in the forward.
_FAMILY_PATHS: dict[str, tuple[str, ...]] = {
    "bert": ("embeddings.word_embeddings",),
    "roberta": ("embeddings.word_embeddings",),
    "xlm-roberta": ("embeddings.word_embeddings",),
    "distilbert": ("embeddings.word_embeddings",),
    "electra": ("embeddings.word_embeddings",),
    "mpnet": ("embeddings.word_embeddings",),
    "gpt2": ("wte",),
    "llama": ("embed_tokens",),
    "qwen2": ("embed_tokens",),
    "qwen3": ("embed_tokens",),
    "mistral": ("embed_tokens",),
    "gemma": ("embed_tokens",),
    "gemma2": ("embed_tokens",),
    "phi3": ("embed_tokens",),
}
# Tried for any family not listed above, before the generic get_input_embeddings().
_COMMON_PATHS = ("embeddings.word_embeddings", "wte", "embed_tokens", "model.embed_tokens", "transformer.wte")


def _get_path(root: nn.Module, path: str) -> nn.Module | None:
    obj: object = root
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if isinstance(obj, nn.Module) else None


def find_word_embeddings(model: nn.Module) -> nn.Module:
    """The module whose output is the word (token) embeddings ``[batch, seq, hidden]`` of ``model``.

    BERT-like: ``embeddings.word_embeddings``; GPT-2: ``transformer.wte``; Llama/Qwen/Mistral: ``model.embed_tokens``;
    otherwise ``model.get_input_embeddings()``. Raises ``ValueError`` (asking for ``layer=``) when none is found.
    """
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    prefix = getattr(model, "base_model_prefix", "")
    roots = [model]
    base = getattr(model, prefix, None) if prefix else None
    if isinstance(base, nn.Module):
        roots.insert(0, base)
    paths = _FAMILY_PATHS.get(model_type, ()) + _COMMON_PATHS
    for root in roots:
        for path in paths:
            module = _get_path(root, path)
            if module is not None:
                return module
    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        try:
            module = getter()
        except (NotImplementedError, AttributeError):
            module = None
        if isinstance(module, nn.Module):
            return module
    raise ValueError(
        f"could not find the word-embedding layer of {type(model).__name__} (model_type={model_type!r}); "
        "pass layer= with the module whose output to attribute to, e.g. layer=model.embeddings"
    )


def resolve_layer(model: nn.Module, layer: nn.Module | str | None) -> nn.Module:
    """``layer`` as a module: None -> the word embeddings; a dotted name -> ``model.get_submodule(name)``."""
    if layer is None:
        return find_word_embeddings(model)
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError as err:
            raise ValueError(
                f"layer={layer!r} is not a submodule of {type(model).__name__}; pass a module or a dotted name "
                "from model.named_modules()"
            ) from err
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError(f"layer={type(layer).__name__} is not a submodule of {type(model).__name__}")
        return layer
    raise TypeError(f"layer must be None, a module of the model or its dotted name, got {type(layer).__name__}")
