"""The ops package: one AttentionSpec for the shared attention arguments, the pre-split public signatures kept, every
old name still reachable, and no function in ops/ repeating the attention arguments."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import torch

import attnscope
from attnscope import ops
from attnscope.ops import AttentionSpec

OPS_DIR = Path(attnscope.__file__).resolve().parent / "ops"
SPEC_ARGS = ("mask", "scale", "is_causal", "window", "softcap", "sinks", "query_chunk")

# The signatures of ops.py before the split, written out (the contract the callers rely on).
ATTENTION_HEAD = [("q", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
                  ("k", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
                  ("mask", "POSITIONAL_OR_KEYWORD", None), ("scale", "KEYWORD_ONLY", None),
                  ("is_causal", "KEYWORD_ONLY", False), ("window", "KEYWORD_ONLY", 0), ("softcap", "KEYWORD_ONLY", 0.0),
                  ("sinks", "KEYWORD_ONLY", None), ("query_chunk", "KEYWORD_ONLY", 0)]
OLD_SIGNATURES = {
    "attention_probs": ATTENTION_HEAD,
    "attention_probs_reduced": ATTENTION_HEAD + [
        ("heads", "KEYWORD_ONLY", None), ("reduce", "KEYWORD_ONLY", None), ("keep_weights", "KEYWORD_ONLY", True),
        ("topk", "KEYWORD_ONLY", 0), ("entropy", "KEYWORD_ONLY", False), ("value", "KEYWORD_ONLY", None)],
    "attention_head_stats": ATTENTION_HEAD + [
        ("input_ids", "KEYWORD_ONLY", None), ("valid", "KEYWORD_ONLY", None),
        ("induction_period", "KEYWORD_ONLY", 0)],
}
OLD_PUBLIC = [
    "HEAD_REDUCE_CODES", "HEAD_STAT_NAMES", "HeadStatSums", "QUADRATURE_RULES", "RankDeficientError", "ReducedAttention",
    "WlsSolution", "attention_flow", "attention_grad_relevance", "attention_head_stats", "attention_probs",
    "attention_probs_reduced", "composite_gauss_legendre", "quadrature_rule", "refine_segments", "rollout",
    "weighted_lasso", "weighted_least_squares", "_C",
]


@pytest.mark.parametrize("name", sorted(OLD_SIGNATURES))
def test_public_signatures_are_the_old_ones_plus_spec(name):
    params = inspect.signature(getattr(ops, name)).parameters
    got = [(p.name, p.kind.name, p.default) for p in params.values() if p.name != "spec"]
    assert got == OLD_SIGNATURES[name]
    assert params["spec"].kind is inspect.Parameter.KEYWORD_ONLY and params["spec"].default is None


def test_every_old_name_is_reachable():
    for name in OLD_PUBLIC:
        assert getattr(ops, name) is not None
    from attnscope.ops import attention_probs, weighted_least_squares  # noqa: F401  (the form callers use)


def random_qk(gen, heads=4, kv_heads=2, q_len=5, k_len=7, dim=8):
    return (torch.randn(2, heads, q_len, dim, generator=gen, dtype=torch.float64),
            torch.randn(2, kv_heads, k_len, dim, generator=gen, dtype=torch.float64))


def test_spec_and_keywords_give_identical_results():
    gen = torch.Generator().manual_seed(0)
    q, k = random_qk(gen)
    mask = torch.rand(2, 1, 5, 7, generator=gen) > 0.2
    sinks = torch.randn(4, generator=gen, dtype=torch.float64)
    kw = dict(scale=0.3, is_causal=True, window=3, softcap=2.0, sinks=sinks, query_chunk=2)
    spec = AttentionSpec(mask, **kw)
    assert torch.equal(ops.attention_probs(q, k, mask, **kw), ops.attention_probs(q, k, spec=spec))
    a = ops.attention_probs_reduced(q, k, mask, **kw, heads=[1, 3], reduce="mean", topk=2, entropy=True)
    b = ops.attention_probs_reduced(q, k, spec=spec, heads=[1, 3], reduce="mean", topk=2, entropy=True)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    # The oracle: plain torch softmax of the capped, masked, windowed logits with the sink column.
    kk = k.repeat_interleave(2, dim=1)
    logits = 2.0 * torch.tanh(0.3 * q @ kk.transpose(-1, -2) / 2.0)
    i = torch.arange(5)[:, None] + 2
    j = torch.arange(7)[None, :]
    visible = mask & (j <= i) & (i - j < 3)
    logits = logits.masked_fill(~visible, float("-inf"))
    full = torch.cat([logits, sinks[None, :, None, None].expand(2, 4, 5, 1)], -1).softmax(-1)[..., :-1]
    assert (ops.attention_probs(q, k, spec=spec) - full).abs().max().item() <= 1e-12


def test_default_scale_and_gradients_follow_the_spec():
    gen = torch.Generator().manual_seed(1)
    q, k = random_qk(gen, q_len=3, k_len=3)
    want = (q @ k.repeat_interleave(2, dim=1).transpose(-1, -2) / 8**0.5).softmax(-1)
    assert (ops.attention_probs(q, k) - want).abs().max().item() <= 1e-12
    q.requires_grad_(True)
    sinks = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q, s: ops.attention_probs(q, k, spec=AttentionSpec(sinks=s, softcap=1.5)),
                                    (q, sinks))


def test_bad_spec_arguments_name_the_problem():
    q, k = random_qk(torch.Generator().manual_seed(2))
    with pytest.raises(TypeError, match=r"attention_probs: pass the attention arguments either in spec= or as "
                                        r"\['is_causal'\], not both"):
        ops.attention_probs(q, k, spec=AttentionSpec(), is_causal=True)
    with pytest.raises(TypeError, match=r"either in spec= or as \['mask'\]"):
        ops.attention_probs(q, k, torch.ones(2, 1, 5, 7, dtype=torch.bool), spec=AttentionSpec())
    with pytest.raises(TypeError, match="spec must be an attnscope.ops.AttentionSpec, got dict"):
        ops.attention_probs(q, k, spec={"scale": 1.0})
    with pytest.raises(TypeError, match="unexpected keyword argument 'causal'"):
        ops.attention_probs(q, k, causal=True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'heads'"):
        ops.attention_head_stats(q, k, heads=[0])
    with pytest.raises(ValueError, match=r"head_dim > 0, got shape \(2, 4, 5, 0\)"):
        ops.attention_probs_reduced(q[..., :0], k[..., :0])
    with pytest.raises(TypeError, match=r"no attention argument named \['mask_grad'\]"):
        AttentionSpec.gradients(mask_grad=None)


def test_no_function_in_ops_repeats_the_attention_arguments():
    offenders = []
    for path in sorted(OPS_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = {x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs]}
                if len(names & set(SPEC_ARGS)) >= 5:  # the backward schema shares four of them
                    offenders.append(f"{path.name}:{node.lineno} {node.name}")
    assert offenders == []
    assert len(list(OPS_DIR.glob("*.py"))) >= 6  # the scan saw the package
