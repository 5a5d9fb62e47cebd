"""Property tests (Hypothesis): every op against its plain-torch (or numpy) reference in attention_reference.py,
over random shapes, GQA ratios, masks, windows, softcap, sinks, chunk sizes, dtypes, NaN/inf and zero sizes.

`make test` runs the derandomized "ci" profile (fixed examples, bounded count); `make fuzz` runs the random "fuzz"
profile with FUZZ_EXAMPLES examples per property (HYPOTHESIS_PROFILE=fuzz).
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from attnscope import ops

import attention_reference as ref

_COMMON = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", derandomize=True, max_examples=200, **_COMMON)
settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20000")), **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

FLOATS = [torch.float64, torch.float32, torch.bfloat16, torch.float16]


def tol(dtype: torch.dtype, logit_scale: float) -> float:
    """Absolute tolerance on probabilities: rounding of the compute dtype (float64, else float32) on logits of the
    given magnitude (exp turns an absolute logit error e into a relative error e)."""
    eps = 1e-15 if dtype == torch.float64 else 1e-6
    return eps * 8 * max(1.0, logit_scale)


def randn(seed: int, shape, dtype, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)


@st.composite
def attention_cases(draw, zero_sizes=True):
    lo = 0 if zero_sizes else 1
    batch = draw(st.integers(lo, 2))
    kv_heads = draw(st.integers(1, 3))
    heads = kv_heads * draw(st.integers(1, 3))
    k_len = draw(st.integers(lo, 7))
    causal = draw(st.booleans())
    window = draw(st.sampled_from([0, 0, 1, 2, 4]))
    q_len = draw(st.integers(lo, k_len if (causal or window) else 7))
    dim = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from(FLOATS))
    seed = draw(st.integers(0, 2**31 - 1))
    magnitude = draw(st.sampled_from([0.1, 1.0, 4.0]))
    q = randn(seed, (batch, heads, q_len, dim), dtype, magnitude)
    k = randn(seed + 1, (batch, kv_heads, k_len, dim), dtype, magnitude)
    mask_kind = draw(st.sampled_from(["none", "bool", "additive", "finfo"]))
    mask_shape = draw(st.sampled_from([(q_len, k_len), (batch, 1, q_len, k_len), (1, heads, q_len, k_len),
                                       (batch, 1, 1, k_len), (1, q_len, k_len)]))
    g = torch.Generator().manual_seed(seed + 2)
    mask = None
    if mask_kind == "bool":
        mask = torch.rand(mask_shape, generator=g) > 0.3
    elif mask_kind == "additive":
        mask = torch.randn(mask_shape, generator=g, dtype=torch.float64).to(draw(st.sampled_from(FLOATS[:2])))
        mask = mask.masked_fill(torch.rand(mask_shape, generator=g) < 0.2, -math.inf)
    elif mask_kind == "finfo":
        mask = torch.where(torch.rand(mask_shape, generator=g) < 0.3, torch.finfo(torch.float32).min, 0.0)
    sinks = randn(seed + 3, (heads,), dtype) if draw(st.booleans()) else None
    spec = dict(scale=draw(st.sampled_from([None, 0.3, 1.7])), is_causal=causal, window=window,
                softcap=draw(st.sampled_from([0.0, 0.0, 0.7, 5.0])), sinks=sinks,
                query_chunk=draw(st.integers(0, q_len + 2)))
    return q, k, mask, spec


def reference_probs(q, k, mask, spec):
    scale = spec["scale"] if spec["scale"] is not None else 1.0 / math.sqrt(q.shape[-1])
    return ref.attention_probs(q, k, mask, scale=scale, is_causal=spec["is_causal"], window=spec["window"],
                               softcap=spec["softcap"], sinks=spec["sinks"])


def logit_scale(q, k, spec, mask):
    scale = spec["scale"] if spec["scale"] is not None else 1.0 / math.sqrt(q.shape[-1])
    m = float(q.double().abs().amax()) if q.numel() else 0.0
    n = float(k.double().abs().amax()) if k.numel() else 0.0
    extra = float(mask.double().abs().nan_to_num(posinf=0, neginf=0).amax()) if mask is not None and mask.numel() \
        and mask.dtype != torch.bool else 0.0
    return m * n * q.shape[-1] * scale + extra


@given(attention_cases())
def test_attention_probs_matches_reference(case):
    q, k, mask, spec = case
    out = ops.attention_probs(q, k, mask, **spec)
    expected = reference_probs(q, k, mask, spec)
    assert out.dtype == (torch.float64 if q.dtype == torch.float64 else torch.float32)
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=tol(q.dtype, logit_scale(q, k, spec, mask)))


@given(attention_cases(), st.data())
def test_attention_probs_reduced_matches_reference(case, data):
    q, k, mask, spec = case
    heads = data.draw(st.none() | st.lists(st.integers(0, q.shape[1] - 1), min_size=1, max_size=3))
    reduce = data.draw(st.sampled_from([None, "mean", "max", "sum"]))
    topk = data.draw(st.integers(0, k.shape[2]))
    r = ops.attention_probs_reduced(q, k, mask, **spec, heads=heads, reduce=reduce, topk=topk, entropy=True)
    p = reference_probs(q, k, mask, spec)
    atol = tol(q.dtype, logit_scale(q, k, spec, mask)) * (len(heads) if heads else q.shape[1])
    torch.testing.assert_close(r.weights.double(), ref.reduced(p, heads, reduce), rtol=0, atol=atol)
    sel = ref.reduced(p, heads)
    torch.testing.assert_close(r.entropy.double(), ref.entropy(sel), rtol=0, atol=atol * (1 + 40 * k.shape[2]))
    if topk:
        torch.testing.assert_close(r.topk_values.double(), sel.topk(topk, -1).values, rtol=0, atol=atol)
        torch.testing.assert_close(sel.gather(-1, r.topk_indices), sel.topk(topk, -1).values, rtol=0, atol=atol)


@given(attention_cases(), st.data())
def test_attention_head_stats_matches_definitions(case, data):
    q, k, mask, spec = case
    batch, k_len = k.shape[0], k.shape[2]
    seed = data.draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 3, (batch, k_len), generator=g)
    valid = torch.rand(batch, k_len, generator=g) > 0.2
    period = data.draw(st.sampled_from([0, 2, 3]))
    s = ops.attention_head_stats(q, k, mask, **spec, input_ids=ids, valid=valid, induction_period=period)
    sums, counts = ref.head_stats(reference_probs(q, k, mask, spec), ids, valid, period)
    assert torch.equal(s.counts, counts)
    atol = tol(q.dtype, logit_scale(q, k, spec, mask)) * (1 + 40 * k_len) * max(1, q.shape[2]) * max(1, k_len)
    torch.testing.assert_close(s.sums, sums, rtol=0, atol=atol)


@given(attention_cases(zero_sizes=False), st.sampled_from(["q", "k", "sinks", "mask"]),
       st.sampled_from([math.nan, math.inf, -math.inf]), st.data())
def test_attention_ops_refuse_non_finite_inputs(case, where, value, data):
    q, k, mask, spec = case
    if where == "sinks":
        assume(spec["sinks"] is not None)
        t = spec["sinks"] = spec["sinks"].clone()
    elif where == "mask":
        assume(mask is not None and mask.dtype != torch.bool and value != -math.inf)
        t = mask = mask.clone()
    else:
        t = q if where == "q" else k
    flat = t.view(-1)
    flat[data.draw(st.integers(0, flat.numel() - 1))] = value
    for call in (ops.attention_probs, ops.attention_probs_reduced, ops.attention_head_stats):
        with pytest.raises(ValueError, match=f"{where} must be finite"):
            call(q, k, mask, **spec)


@given(st.integers(1, 4), st.integers(0, 2), st.integers(1, 3), st.integers(0, 6), st.booleans(),
       st.sampled_from(["mean", "max"]), st.sampled_from(FLOATS), st.integers(0, 2**31 - 1), st.data())
def test_rollout_matches_matrix_chain(layers, batch, heads, length, residual, head_reduce, dtype, seed, data):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(layers, batch, heads, length, length, generator=g, dtype=torch.float64)
    a = (a / a.sum(-1, keepdim=True).clamp_min(1e-12)).to(dtype)
    rows = data.draw(st.none() | st.lists(st.integers(0, length - 1), max_size=3)) if length else None
    out = ops.rollout(a, residual=residual, head_reduce=head_reduce, rows=rows)
    expected = ref.rollout(a, residual, head_reduce)
    expected = expected if rows is None else expected[:, rows]
    atol = 1e-12 if dtype == torch.float64 else 1e-5 * layers
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=atol)


@given(st.integers(1, 3), st.integers(0, 2), st.integers(1, 3), st.integers(0, 5), st.integers(0, 2**31 - 1))
def test_attention_grad_relevance_matches_formula(layers, batch, heads, n, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(layers, batch, heads, n, n, generator=g, dtype=torch.float64)
    grad = torch.randn(layers, batch, heads, n, n, generator=g, dtype=torch.float64)
    torch.testing.assert_close(ops.attention_grad_relevance(a, grad), ref.grad_relevance(a, grad), rtol=1e-12,
                               atol=1e-12)


@given(st.sampled_from(["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"]),
       st.integers(-2, 300))
def test_quadrature_rule_matches_closed_forms(method, n):
    least = 2 if method == "riemann_trapezoid" else 1
    if n < least:
        with pytest.raises(ValueError, match=f"needs n >= {least}"):
            ops.quadrature_rule(method, n)
        return
    alphas, weights = ops.quadrature_rule(method, n)
    if method == "gausslegendre":
        x, w = ref.gauss_legendre(n)
    else:
        i = torch.arange(n, dtype=torch.float64)
        x = {"riemann_left": i / n, "riemann_right": (i + 1) / n, "riemann_middle": (i + 0.5) / n,
             "riemann_trapezoid": i / max(n - 1, 1)}[method]
        w = torch.full((n,), 1.0 / n, dtype=torch.float64)
        if method == "riemann_trapezoid":
            w = torch.full((n,), 1.0 / (n - 1), dtype=torch.float64)
            w[0] = w[-1] = 0.5 / (n - 1)
    torch.testing.assert_close(alphas, x, rtol=0, atol=1e-13)
    torch.testing.assert_close(weights, w, rtol=0, atol=1e-13)


@st.composite
def segments(draw):
    cuts = draw(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=0, max_size=6, unique=True))
    b = torch.tensor(sorted({0.0, 1.0, *cuts}), dtype=torch.float64)
    assume(bool((b.diff() > 0).all()))
    return b


@given(segments(), st.integers(1, 12))
def test_composite_gauss_legendre_matches_numpy(bounds, order):
    alphas, weights = ops.composite_gauss_legendre(bounds, order)
    x, w = ref.composite_gauss_legendre(bounds, order)
    torch.testing.assert_close(alphas, x, rtol=0, atol=1e-13)
    torch.testing.assert_close(weights, w, rtol=0, atol=1e-13)


@given(segments(), st.data())
def test_refine_segments_matches_brute_force(bounds, data):
    s = bounds.numel() - 1
    errors = torch.tensor(data.draw(st.lists(st.floats(-2.0, 2.0, allow_nan=False), min_size=s, max_size=s)),
                          dtype=torch.float64)
    tolerance = data.draw(st.floats(0.0, 3.0))
    max_new = data.draw(st.integers(0, s + 1))
    out = ops.refine_segments(bounds, errors, tolerance, max_new)
    assert torch.equal(out, ref.refine_segments(bounds, errors, tolerance, max_new))


@given(st.integers(0, 4), st.integers(1, 4), st.lists(st.integers(0, 5), min_size=0, max_size=4),
       st.sampled_from([torch.float32, torch.float64]), st.integers(0, 2**31 - 1))
def test_topk_merge_matches_sorting(units, k, block_rows, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    values, keys = ops.empty_topk(units, k, dtype=dtype)
    seen = 0
    for rows in block_rows:
        new = torch.randint(0, 4, (rows, units), generator=g).to(dtype)
        new[torch.rand(rows, units, generator=g) < 0.1] = math.nan  # skipped, as documented
        new_keys = torch.arange(seen, seen + rows)
        expected = ref.topk_merge(values, keys, new, new_keys)
        out = ops.topk_merge(values, keys, new, new_keys)
        assert torch.equal(out.values, expected[0]) and torch.equal(out.keys, expected[1])
        values, keys, seen = out.values, out.keys, seen + rows


@given(st.integers(0, 2), st.integers(0, 4), st.integers(0, 5), st.integers(1, 12), st.booleans(), st.booleans(),
       st.integers(0, 3), st.sampled_from([0.0, 3.0]), st.integers(0, 5), st.integers(0, 3),
       st.sampled_from([torch.float64, torch.float32]), st.integers(0, 2**31 - 1), st.data())
def test_vocab_projection_matches_full_softmax(groups, rows, d, vocab, with_bias, with_ref, n_targets, softcap,
                                               vocab_chunk, row_block, dtype, seed, data):
    k = data.draw(st.integers(1, vocab))
    hidden = randn(seed, (groups, rows, d), dtype, 2.0)
    weight = randn(seed + 1, (vocab, d), dtype)
    bias = randn(seed + 2, (vocab,), dtype) if with_bias else None
    reference = randn(seed + 3, (rows, d), dtype, 2.0) if with_ref else None
    targets = torch.randint(0, vocab, (rows, n_targets), generator=torch.Generator().manual_seed(seed))
    out = ops.vocab_projection(hidden, weight, bias, reference=reference, targets=targets, k=k, softcap=softcap,
                               vocab_chunk=vocab_chunk, row_block=row_block)
    expected = ref.vocab_projection(hidden, weight, bias, reference, targets, k, softcap)
    atol = 1e-10 if dtype == torch.float64 else 1e-4
    for name, want in expected.items():
        got = getattr(out, name)
        if name in ("topk_ids", "target_ranks"):
            # equal logits within rounding may order differently in float32: compare the log-probabilities instead
            if dtype == torch.float64:
                assert torch.equal(got, want), name
            continue
        torch.testing.assert_close(got.double(), want, rtol=0, atol=atol, msg=name)
