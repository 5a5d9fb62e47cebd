"""The ops' door (issue #22): one device, NaN and infinity, autograd honesty, degenerate sizes, bounded work.

Each test here failed on main 0d2deea: a meta mask with CPU q/k returned an uninitialised tensor, meta q with CPU k
returned a meta tensor, a NaN query row came back as zeros (a masked row), an additive mask that required grad got
no gradient, the non-differentiable ops returned outputs that claimed requires_grad, zero heads gave NaN in
attention_grad_relevance while rollout refused them, and a Gauss-Legendre rule of 10^6 points ran for minutes.
"""

from __future__ import annotations

import math
import time

import pytest
import torch

from attnscope import ops

import attention_reference as ref


def qk(batch=1, heads=2, kv_heads=2, q_len=3, k_len=3, dim=4, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, heads, q_len, dim, generator=g, dtype=dtype),
            torch.randn(batch, kv_heads, k_len, dim, generator=g, dtype=dtype))


# --- devices: the meta backend's fake kernels apply the one-device rule --------------------------------------------
def test_meta_mask_with_cpu_q_k_raises():
    q, k = qk()
    mask = torch.ones(1, 1, 3, 3, dtype=torch.bool, device="meta")
    for call in (lambda: ops.attention_probs(q, k, mask),
                 lambda: ops.attention_probs_reduced(q, k, mask, reduce="mean"),
                 lambda: ops.attention_head_stats(q, k, mask)):
        with pytest.raises(ValueError, match="all tensors must be on one device, got q on cpu and mask on meta"):
            call()


def test_meta_q_with_cpu_k_raises():
    q, k = qk()
    with pytest.raises(ValueError, match="got q on meta and k on cpu"):
        ops.attention_probs(q.to("meta"), k)
    with pytest.raises(ValueError, match="got q on cpu and sinks on meta"):
        ops.attention_probs(q, k, sinks=torch.zeros(2, device="meta"))


def test_every_multi_tensor_op_refuses_a_meta_argument():
    attn = torch.rand(1, 1, 1, 3, 3)
    with pytest.raises(ValueError, match="attention_grad_relevance: all tensors must be on one device"):
        ops.attention_grad_relevance(attn, attn.to("meta"))
    with pytest.raises(ValueError, match="refine_segments: all tensors must be on one device"):
        ops.refine_segments(torch.tensor([0.0, 1.0], dtype=torch.float64), torch.ones(1, device="meta"), 0.1, 1)
    v, k = ops.empty_topk(2, 2)
    with pytest.raises(ValueError, match="topk_merge: all tensors must be on one device"):
        ops.topk_merge(v, k, torch.zeros(1, 2, device="meta"), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="vocab_projection: all tensors must be on one device"):
        ops.vocab_projection(torch.randn(2, 4), torch.randn(5, 4, device="meta"))


def test_all_meta_inputs_still_give_shapes():
    q, k = qk()
    out = ops.attention_probs(q.to("meta"), k.to("meta"), torch.zeros(3, 3, device="meta"))
    assert out.device.type == "meta" and out.shape == (1, 2, 3, 3)


# --- NaN and infinity --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["q", "k"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_q_or_k_raises_instead_of_a_masked_looking_row(where, value):
    q, k = qk()
    (q if where == "q" else k)[0, 1, 2, 0] = value
    for call in (lambda: ops.attention_probs(q, k), lambda: ops.attention_probs_reduced(q, k),
                 lambda: ops.attention_head_stats(q, k)):
        with pytest.raises(ValueError, match=rf"{where} must be finite, got {value} at index \[0, 1, 2, 0\]"):
            call()


def test_nan_or_plus_inf_mask_and_sinks_raise_minus_inf_masks():
    q, k = qk()
    mask = torch.zeros(3, 3, dtype=torch.float64)
    mask[1, 0] = -math.inf
    expected = ref.attention_probs(q, k, mask, scale=0.5)
    torch.testing.assert_close(ops.attention_probs(q, k, mask), expected, rtol=0, atol=1e-12)
    for bad in (math.nan, math.inf):
        m = mask.clone()
        m[2, 2] = bad
        with pytest.raises(ValueError, match=r"mask must be finite or -inf, got .* at index \[2, 2\]"):
            ops.attention_probs(q, k, m)
    with pytest.raises(ValueError, match="sinks must be finite"):
        ops.attention_probs(q, k, sinks=torch.tensor([0.0, math.nan], dtype=torch.float64))


def test_analysis_ops_refuse_or_propagate_nan_as_documented():
    attn = torch.rand(2, 1, 2, 3, 3, dtype=torch.float64)
    attn[1, 0, 1, 2, 2] = math.nan
    for op in (ops.rollout, ops.attention_flow):
        with pytest.raises(ValueError, match="finite and >= 0"):
            op(attn)
    grad = torch.rand_like(attn)
    grad[1, 0, 1, 2, 2] = 1.0
    out = ops.attention_grad_relevance(attn, grad)  # propagates as the plain formula does
    assert torch.equal(out.isnan(), ref.grad_relevance(attn, grad).isnan()) and out.isnan().any()


def test_vocab_and_quadrature_refuse_non_finite_values():
    with pytest.raises(ValueError, match=r"hidden must be finite, got nan"):
        ops.vocab_projection(torch.tensor([[math.nan, 0.0]]), torch.randn(3, 2), k=2)
    bounds = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="errors must be finite"):
        ops.refine_segments(bounds, torch.tensor([1.0, math.nan], dtype=torch.float64), 0.1, 2)
    with pytest.raises(ValueError, match="tolerance must be finite and >= 0, got nan"):
        ops.refine_segments(bounds, torch.ones(2, dtype=torch.float64), math.nan, 2)
    with pytest.raises(ValueError, match=r"bounds must lie in \[0, 1\]"):
        ops.composite_gauss_legendre(torch.tensor([0.0, 2.0], dtype=torch.float64), 3)


# --- autograd honesty ----------------------------------------------------------------------------------------------
def test_additive_mask_gets_its_gradient():
    q, k = qk(batch=2, heads=4, kv_heads=2, q_len=3, k_len=5)
    for shape in [(3, 5), (2, 1, 3, 5), (1, 4, 1, 5)]:
        mask = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        sinks = torch.randn(4, dtype=torch.float64, requires_grad=True)
        w = torch.randn(2, 4, 3, 5, dtype=torch.float64)
        (ops.attention_probs(q, k, mask, is_causal=True, softcap=2.0, sinks=sinks) * w).sum().backward()
        mask_ref = mask.detach().clone().requires_grad_(True)
        sinks_ref = sinks.detach().clone().requires_grad_(True)
        (ref.attention_probs(q, k, mask_ref, scale=0.5, is_causal=True, softcap=2.0, sinks=sinks_ref) * w).sum() \
            .backward()
        torch.testing.assert_close(mask.grad, mask_ref.grad, rtol=0, atol=1e-12)
        torch.testing.assert_close(sinks.grad, sinks_ref.grad, rtol=0, atol=1e-12)


def test_mask_gradcheck_float64():
    q, k = qk(q_len=2, k_len=4)
    q.requires_grad_(True)
    mask = torch.randn(1, 1, 2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q_, m: ops.attention_probs(q_, k, m, window=3, is_causal=True), (q, mask))


def _non_differentiable_calls(x):
    """One call per op without a backward, each taking the tensor x (that may require grad)."""
    attn = x.detach().abs()[:, :1].unsqueeze(0).expand(1, 1, 2, 3, 3).contiguous()
    attn = attn / attn.sum(-1, keepdim=True)
    a = attn.requires_grad_(x.requires_grad)
    bounds = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64, requires_grad=x.requires_grad)
    v, keys = ops.empty_topk(3, 2, dtype=torch.float64)
    return {
        "attention_probs_reduced": lambda: ops.attention_probs_reduced(x, x.detach(), reduce="mean"),
        "attention_head_stats": lambda: ops.attention_head_stats(x, x.detach()),
        "rollout": lambda: ops.rollout(a),
        "attention_flow": lambda: ops.attention_flow(a),
        "attention_grad_relevance": lambda: ops.attention_grad_relevance(a, a.detach()),
        "composite_gauss_legendre": lambda: ops.composite_gauss_legendre(bounds, 2),
        "refine_segments": lambda: ops.refine_segments(bounds, torch.ones(2, dtype=torch.float64), 0.1, 1),
        "topk_merge": lambda: ops.topk_merge(v, keys, x.detach()[0, 0].requires_grad_(x.requires_grad), torch.arange(3)),
        "vocab_projection": lambda: ops.vocab_projection(x[0, 0], torch.randn(5, 3, dtype=torch.float64)),
    }


@pytest.mark.parametrize("name", list(_non_differentiable_calls(torch.zeros(1, 2, 3, 3))))
def test_ops_without_backward_refuse_inputs_that_require_grad(name):
    x = torch.rand(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match=rf"{name} is not differentiable, but \w+ requires grad"):
        _non_differentiable_calls(x)[name]()
    with torch.no_grad():  # outside grad mode they run, and nothing claims a gradient
        out = _non_differentiable_calls(x)[name]()
    assert not any(t.requires_grad for t in (out if isinstance(out, tuple) else (out,)))


def test_double_backward_of_attention_probs_is_refused_clearly():
    q, k = qk()
    q.requires_grad_(True)
    with pytest.raises(RuntimeError, match="attention_probs_backward is not differentiable, but grad requires grad"):
        torch.autograd.grad(ops.attention_probs(q, k).pow(2).sum(), q, create_graph=True)
    (dq,) = torch.autograd.grad(ops.attention_probs(q, k).pow(2).sum(), q)  # a first-order gradient is fine
    assert dq.shape == q.shape and not dq.requires_grad


# --- degenerate sizes: one rule for siblings ---------------------------------------------------------------------
@pytest.mark.parametrize("q_heads,kv_heads,dim", [(0, 1, 4), (0, 0, 4), (2, 0, 4), (2, 2, 0)])
def test_zero_heads_or_head_dim_are_refused_by_every_attention_op(q_heads, kv_heads, dim):
    q, k = qk(heads=q_heads, kv_heads=kv_heads, dim=dim)
    for call in (lambda: ops.attention_probs(q, k, scale=1.0), lambda: ops.attention_probs_reduced(q, k, scale=1.0),
                 lambda: ops.attention_head_stats(q, k, scale=1.0)):
        with pytest.raises(ValueError, match="q_heads and kv_heads must be >= 1|need head_dim >= 1"):
            call()


@pytest.mark.parametrize("batch,q_len,k_len", [(0, 3, 3), (2, 0, 3), (2, 0, 0), (2, 3, 0)])
def test_empty_batch_and_sequences_give_empty_results_in_every_attention_op(batch, q_len, k_len):
    q, k = qk(batch=batch, heads=4, kv_heads=2, q_len=q_len, k_len=k_len)
    probs = ops.attention_probs(q, k)
    assert probs.shape == (batch, 4, q_len, k_len) and not probs.isnan().any()
    torch.testing.assert_close(probs, ref.attention_probs(q, k, scale=0.5), rtol=0, atol=0)
    r = ops.attention_probs_reduced(q, k, reduce="mean", entropy=True)
    assert r.weights.shape == (batch, q_len, k_len) and r.entropy.shape == (batch, 4, q_len)
    s = ops.attention_head_stats(q, k)
    assert s.sums.shape == (batch, 4, 6) and not s.sums.isnan().any() and int(s.counts.sum()) == \
        (0 if k_len == 0 else batch * min(q_len, k_len) * 4)


def test_analysis_siblings_share_one_rule():
    for op in (ops.rollout, ops.attention_flow, lambda a: ops.attention_grad_relevance(a, a)):
        with pytest.raises(ValueError, match="at least one layer and one head"):
            op(torch.rand(2, 1, 0, 3, 3))  # zero heads: relevance gave NaN on main
        with pytest.raises(ValueError, match="at least one layer and one head"):
            op(torch.rand(0, 1, 2, 3, 3))
        assert op(torch.rand(2, 0, 2, 3, 3)).shape == (0, 3, 3)
        assert op(torch.rand(2, 1, 2, 0, 0)).shape == (1, 0, 0)


# --- unbounded work ----------------------------------------------------------------------------------------------
def test_huge_gauss_legendre_is_refused_at_once():
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"gausslegendre takes at most 4096 points \(its nodes cost O\(n\^2\)\)"):
        ops.quadrature_rule("gausslegendre", 10**6)
    with pytest.raises(ValueError, match="order must be in 1..4096"):
        ops.composite_gauss_legendre(torch.tensor([0.0, 1.0], dtype=torch.float64), 10**6)
    assert time.perf_counter() - start < 1.0
    alphas, _ = ops.quadrature_rule("gausslegendre", 4096)  # the bound itself stays quick
    assert alphas.shape == (4096,) and time.perf_counter() - start < 5.0
    alphas, weights = ops.quadrature_rule("riemann_middle", 10**6)  # O(n): no bound
    assert alphas.shape == (10**6,) and abs(float(weights.sum()) - 1) < 1e-9


# --- front doors: empty batches and zero-length sequences never reach model code ---------------------------------
@pytest.mark.parametrize("inputs", [torch.zeros(0, 3, dtype=torch.long), torch.zeros(1, 0, dtype=torch.long), [],
                                    [[]], [[1, 2], []], {"input_ids": torch.zeros(2, 0, dtype=torch.long)}])
def test_capture_and_attribute_refuse_empty_inputs_before_the_model_runs(inputs):
    import attnscope as ats
    import tiny_models

    model = tiny_models.build("llama")
    calls = []
    handle = model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(ValueError, match="empty|batch > 0 and seq > 0"):
            ats.capture_attention(model, inputs)
        with pytest.raises(ValueError, match="empty|batch > 0 and seq > 0"):
            ats.attribute(model, inputs, method="saliency", target=1)
    finally:
        handle.remove()
    assert calls == []
