"""Where each activation site sits in a model family, and how to read its attention weights per head.

A site is a module path template (``{i}`` is the layer index), relative to the model's base model (the module at
``model.base_model_prefix``), and which side of the module it reads: ``"in"`` (the first positional argument or
``hidden_states``, through a forward pre-hook) or ``"out"`` (the output, its first element for tuples). The sites:

* ``resid_pre``: the residual stream entering layer ``i`` (the layer's input);
* ``resid_mid``: the residual stream between the attention and the MLP (pre-norm families: the input of the
  MLP's norm; BERT-like post-norm families: the attention block's normalised output that enters the MLP);
* ``resid_post``: the layer's output;
* ``attn_out``: the attention's output projection (bias included; Gemma2's and BERT's norms come after it);
* ``head_out``: each head's output before the output projection (the projection's input, split into heads);
* ``mlp_out``: the MLP's output (BERT: its output projection, before the residual and the norm);
* ``mlp_hidden``: the neurons: the input of the MLP's output projection (gated MLPs: ``act(gate) * up``).

A family not in the table can still be captured by naming modules: ``sites={"mlp_hidden":
"model.layers.{i}.mlp.act_fn"}`` (paths relative to the model passed in; the module's output is read).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ..arguments import int_list

SITES = ("resid_pre", "resid_mid", "resid_post", "attn_out", "head_out", "mlp_out", "mlp_hidden")


@dataclass(frozen=True)
class SitePath:
    """One site of one layer: a module path template and the side read (``"in"`` or ``"out"``)."""

    template: str
    side: str = "out"

    def path(self, layer: int) -> str:
        return self.template.format(i=layer)


# Per head: W_Q, W_K, W_V [head, d_model, d_head] (q heads; GQA maps k/v), W_O [head, d_head, d_model].
AttentionWeights = tuple[Tensor, Tensor, Tensor, Tensor]


@dataclass(frozen=True)
class Family:
    """What differs between model families, for activations and weights."""

    name: str
    model_types: tuple[str, ...]
    sites: dict[str, SitePath]
    layers: str  # path template of the layer modules
    attention: str  # path template of the attention module (its weights)
    input_norm: str | None  # the norm the attention reads through (pre-norm families), None for post-norm ones
    final_norm: str | None  # applied to the last layer's output by output_hidden_states (None: not applied)
    read_attention: Callable[[nn.Module, int, int, int], AttentionWeights]
    rope: bool = False
    missing: dict[str, str] = field(default_factory=dict)  # site -> why it does not exist in some configurations


def _split_heads_linear(weight: Tensor, heads: int) -> Tensor:
    """nn.Linear weight [heads * d_head, d_model] -> [heads, d_model, d_head] (x @ W per head)."""
    out, d_model = weight.shape
    return weight.reshape(heads, out // heads, d_model).transpose(1, 2)


def _out_linear(weight: Tensor, heads: int) -> Tensor:
    """nn.Linear output projection weight [d_model, heads * d_head] -> [heads, d_head, d_model]."""
    d_model, inner = weight.shape
    return weight.t().reshape(heads, inner // heads, d_model)


def _expand_kv(w: Tensor, heads: int) -> Tensor:
    """[kv_heads, ...] -> [heads, ...]: q head h reads kv head h // (heads // kv_heads)."""
    if w.shape[0] == heads:
        return w
    return w.repeat_interleave(heads // w.shape[0], dim=0)


def _llama_attention(attn: nn.Module, heads: int, kv_heads: int, d_model: int) -> AttentionWeights:
    q = _split_heads_linear(attn.q_proj.weight, heads)
    k = _expand_kv(_split_heads_linear(attn.k_proj.weight, kv_heads), heads)
    v = _expand_kv(_split_heads_linear(attn.v_proj.weight, kv_heads), heads)
    return q, k, v, _out_linear(attn.o_proj.weight, heads)


def _gpt2_attention(attn: nn.Module, heads: int, kv_heads: int, d_model: int) -> AttentionWeights:
    w = attn.c_attn.weight  # Conv1D [d_model, 3 * d_model]: x @ w
    q, k, v = (part.reshape(d_model, heads, -1).permute(1, 0, 2) for part in w.split(d_model, dim=1))
    o = attn.c_proj.weight  # Conv1D [d_model (inner), d_model]
    return q, k, v, o.reshape(heads, -1, d_model)


def _neox_attention(attn: nn.Module, heads: int, kv_heads: int, d_model: int) -> AttentionWeights:
    w = attn.query_key_value.weight  # [heads * 3 * d_head, d_model], per head (q, k, v) rows
    w = w.reshape(heads, 3, -1, d_model)
    q, k, v = (w[:, j].transpose(1, 2) for j in range(3))
    return q, k, v, _out_linear(attn.dense.weight, heads)


def _bert_attention(attn: nn.Module, heads: int, kv_heads: int, d_model: int) -> AttentionWeights:
    s = attn.self
    q, k, v = (_split_heads_linear(m.weight, heads) for m in (s.query, s.key, s.value))
    return q, k, v, _out_linear(attn.output.dense.weight, heads)


def _distilbert_attention(attn: nn.Module, heads: int, kv_heads: int, d_model: int) -> AttentionWeights:
    q, k, v = (_split_heads_linear(m.weight, heads) for m in (attn.q_lin, attn.k_lin, attn.v_lin))
    return q, k, v, _out_linear(attn.out_lin.weight, heads)


def _decoder_sites(prefix: str, attn: str, mid: str, mlp: str, down: str, out_proj: str) -> dict[str, SitePath]:
    layer = prefix + ".{i}"
    return {
        "resid_pre": SitePath(layer, "in"),
        "resid_mid": SitePath(f"{layer}.{mid}", "in"),
        "resid_post": SitePath(layer, "out"),
        "attn_out": SitePath(f"{layer}.{attn}.{out_proj}", "out"),
        "head_out": SitePath(f"{layer}.{attn}.{out_proj}", "in"),
        "mlp_out": SitePath(f"{layer}.{mlp}", "out"),
        "mlp_hidden": SitePath(f"{layer}.{mlp}.{down}", "in"),
    }


_LLAMA_SITES = _decoder_sites("layers", "self_attn", "post_attention_layernorm", "mlp", "down_proj", "o_proj")
_BERT_SITES = {
    "resid_pre": SitePath("encoder.layer.{i}", "in"),
    "resid_mid": SitePath("encoder.layer.{i}.intermediate", "in"),
    "resid_post": SitePath("encoder.layer.{i}", "out"),
    "attn_out": SitePath("encoder.layer.{i}.attention.output.dense", "out"),
    "head_out": SitePath("encoder.layer.{i}.attention.output.dense", "in"),
    "mlp_out": SitePath("encoder.layer.{i}.output.dense", "out"),
    "mlp_hidden": SitePath("encoder.layer.{i}.output.dense", "in"),
}

FAMILIES: tuple[Family, ...] = (
    Family("llama", ("llama", "qwen2", "qwen3", "mistral"), _LLAMA_SITES, "layers.{i}", "layers.{i}.self_attn",
           "layers.{i}.input_layernorm", "norm", _llama_attention, rope=True),
    Family("gemma2", ("gemma2",),
           _decoder_sites("layers", "self_attn", "pre_feedforward_layernorm", "mlp", "down_proj", "o_proj"),
           "layers.{i}", "layers.{i}.self_attn", "layers.{i}.input_layernorm", "norm", _llama_attention, rope=True),
    Family("gpt2", ("gpt2",), _decoder_sites("h", "attn", "ln_2", "mlp", "c_proj", "c_proj"), "h.{i}", "h.{i}.attn",
           "h.{i}.ln_1", "ln_f", _gpt2_attention),
    Family("gpt_neox", ("gpt_neox",),
           _decoder_sites("layers", "attention", "post_attention_layernorm", "mlp", "dense_4h_to_h", "dense"),
           "layers.{i}", "layers.{i}.attention", "layers.{i}.input_layernorm", "final_layer_norm", _neox_attention,
           rope=True, missing={"resid_mid": "use_parallel_residual=True (attention and MLP both read resid_pre)"}),
    Family("bert", ("bert", "roberta", "xlm-roberta"), _BERT_SITES, "encoder.layer.{i}", "encoder.layer.{i}.attention",
           None, None, _bert_attention),
    Family("distilbert", ("distilbert",), {
        "resid_pre": SitePath("transformer.layer.{i}", "in"),
        "resid_mid": SitePath("transformer.layer.{i}.sa_layer_norm", "out"),
        "resid_post": SitePath("transformer.layer.{i}", "out"),
        "attn_out": SitePath("transformer.layer.{i}.attention.out_lin", "out"),
        "head_out": SitePath("transformer.layer.{i}.attention.out_lin", "in"),
        "mlp_out": SitePath("transformer.layer.{i}.ffn", "out"),
        "mlp_hidden": SitePath("transformer.layer.{i}.ffn.lin2", "in"),
    }, "transformer.layer.{i}", "transformer.layer.{i}.attention", None, None, _distilbert_attention),
)
_BY_TYPE = {t: fam for fam in FAMILIES for t in fam.model_types}


def supported_model_types() -> list[str]:
    return sorted(_BY_TYPE)


def model_type(model: nn.Module) -> str | None:
    return getattr(getattr(model, "config", None), "model_type", None)


def find_family(model: nn.Module, *, required: bool = True) -> Family | None:
    """The :class:`Family` of ``model`` (by ``config.model_type``); unknown families raise ``ValueError`` when
    ``required``, naming the supported ones and how to pass module names instead."""
    family = _BY_TYPE.get(model_type(model))
    if family is None and required:
        raise ValueError(
            f"attnscope has no site adapter for {type(model).__name__} (model_type={model_type(model)!r}); supported "
            f"model types: {', '.join(supported_model_types())}. Pass module names instead, relative to the model, "
            "with {i} for the layer: sites={'mlp_hidden': 'model.layers.{i}.mlp.act_fn'}"
        )
    return family


def base_model(model: nn.Module) -> nn.Module:
    """The module the family paths are relative to (``model.<base_model_prefix>`` when it exists)."""
    prefix = getattr(model, "base_model_prefix", "")
    base = getattr(model, prefix, None) if prefix else None
    return base if isinstance(base, nn.Module) else model


def num_layers(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    n = getattr(config, "num_hidden_layers", None)
    if not isinstance(n, int):
        raise ValueError(f"cannot tell how many layers {type(model).__name__} has (no config.num_hidden_layers)")
    return n


def num_heads(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    n = getattr(config, "num_attention_heads", None)
    if not isinstance(n, int):
        raise ValueError(f"cannot tell how many heads {type(model).__name__} has (no config.num_attention_heads)")
    return n


def layer_indices(layers: Sequence[int] | int | None, n_layers: int) -> list[int] | None:
    """``layers`` as sorted distinct indices in ``0..n_layers-1`` (negative ones count from the end); None stays
    None. Raises ``ValueError`` naming an index out of range."""
    layers = int_list(layers, "layers")
    if layers is None:
        return None
    out = []
    for layer in layers:
        if not -n_layers <= layer < n_layers:
            raise ValueError(f"layer {layer} out of range: model has {n_layers} layers (0..{n_layers - 1})")
        out.append(layer % n_layers)
    return sorted(set(out))


def get_module(root: nn.Module, path: str, *, owner: nn.Module | None = None) -> nn.Module:
    try:
        return root.get_submodule(path)
    except AttributeError as err:
        who = type(owner or root).__name__
        raise ValueError(f"module path {path!r} does not exist in {who}; pick one from model.named_modules()") from err


def site_module(model: nn.Module, family: Family | None, site: str, layer: int,
                override: str | None = None) -> tuple[nn.Module, str]:
    """The module of ``site`` at ``layer`` and the side to read (``"in"``/``"out"``). ``override``: a path template
    relative to ``model`` (its output is read)."""
    if override is not None:
        return get_module(model, override.format(i=layer), owner=model), "out"
    assert family is not None
    if site in family.missing:
        config = getattr(model, "config", None)
        if getattr(config, "use_parallel_residual", False):
            raise ValueError(f"site {site!r} does not exist in this {family.name} model: {family.missing[site]}; "
                             f"pass a module name instead (sites={{{site!r}: '...{{i}}...'}})")
    where = family.sites[site]
    return get_module(base_model(model), where.path(layer), owner=model), where.side


def attention_weights(model: nn.Module, layer: int) -> AttentionWeights:
    """Per-head ``W_Q, W_K, W_V`` ``[head, d_model, d_head]`` and ``W_O`` ``[head, d_head, d_model]`` of ``layer``,
    detached; q·k logits are ``(x W_Q)(x W_K)^T`` before scaling, and a head writes ``z W_O`` to the residual."""
    family = find_family(model)
    assert family is not None
    config = model.config
    heads = num_heads(model)
    kv = getattr(config, "num_key_value_heads", None) or heads
    d_model = config.hidden_size
    attn = get_module(base_model(model), family.attention.format(i=layer), owner=model)
    with torch.no_grad():
        return tuple(w.detach() for w in family.read_attention(attn, heads, kv, d_model))  # type: ignore[return-value]


__all__ = ["FAMILIES", "SITES", "Family", "SitePath", "attention_weights", "base_model", "find_family",
           "get_module", "layer_indices", "num_heads", "num_layers", "site_module", "supported_model_types"]
