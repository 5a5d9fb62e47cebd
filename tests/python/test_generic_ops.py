"""The device-generic kernels (cpp/generic, cpp/src/generic) forced on the CPU through the ``*_generic`` ops: equal
to the C++ CPU kernels within 1e-6 (float32) on the op test corpus, forward and backward, under opcheck and
torch.compile; on the meta device shapes come from the fake kernels. The same C++ functions are registered as the
ops' CUDA, MPS and XPU kernels, so what runs here is what runs on those devices."""

from __future__ import annotations

import pytest
import torch
from test_attention_probs_op import CASES

import attnscope.ops  # noqa: F401  (loads the ops and their fake kernels)

ops = torch.ops.attnscope
OPS = ("attention_probs", "attention_probs_backward", "attention_probs_reduced", "attention_head_stats", "rollout",
       "attention_flow", "attention_grad_relevance", "topk_merge", "composite_gauss_legendre", "refine_segments",
       "vocab_projection")
TOL = {torch.float32: 1e-6, torch.float64: 1e-12}


def _close(got, want, tol, what=""):
    assert got.shape == want.shape and got.dtype == want.dtype and got.device == want.device, what
    if not got.is_floating_point():
        assert torch.equal(got, want), what
        return
    assert (got.double() - want.double()).abs().max().item() <= tol, what


def _attention_args(case, dtype, *, heads=8, kv_heads=2, q_len=5, k_len=9):
    opts = dict(CASES[case])
    q = torch.randn(2, heads, q_len, 16, dtype=dtype)
    k = torch.randn(2, kv_heads, k_len, 16, dtype=dtype)
    sinks = torch.randn(heads, dtype=dtype) if opts.pop("sinks", False) else None
    mask = torch.rand(2, 1, q_len, k_len) > 0.2
    return q, k, (mask, 0.4, opts.get("is_causal", False), opts.get("window", 0), opts.get("softcap", 0.0), sinks, 0)


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("key", ["CUDA", "MPS", "XPU"])
def test_every_op_has_a_kernel_for_the_device_keys(name, key):
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"attnscope::{name}", key)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_attention_probs_forward_and_backward(case, dtype):
    q, k, args = _attention_args(case, dtype)
    mask, scale, causal, window, softcap, sinks, _ = args
    leaves = [t.requires_grad_() for t in (q, k, sinks) if t is not None]
    weights = torch.randn(2, 8, 5, 9, dtype=dtype)
    results = []
    for op in (ops.attention_probs, ops.attention_probs_generic):
        probs = op(q, k, mask, scale, causal, window, softcap, sinks, 0)
        results.append((probs, torch.autograd.grad((probs * weights).sum(), leaves)))
    (want, want_grads), (got, got_grads) = results
    _close(got, want, TOL[dtype], "probs")
    for g, w in zip(got_grads, want_grads):
        _close(g, w, 10 * TOL[dtype], "gradient")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_and_fully_masked_rows(dtype):
    q, k = torch.randn(1, 4, 6, 8).to(dtype), torch.randn(1, 2, 6, 8).to(dtype)
    mask = torch.ones(1, 1, 6, 6, dtype=torch.bool)
    mask[..., 2, :] = False
    additive = torch.zeros(1, 4, 6, 6).masked_fill(torch.rand(1, 4, 6, 6) > 0.6, torch.finfo(torch.float32).min)
    for m in (mask, additive):
        args = (q, k, m, 0.3, True, 0, 0.0, None, 2)
        want, got = ops.attention_probs(*args), ops.attention_probs_generic(*args)
        assert got.dtype == torch.float32
        _close(got, want, 1e-6)
        if m is mask:
            assert torch.equal(got[..., 2, :], torch.zeros_like(got[..., 2, :]))  # zeros, never NaN


@pytest.mark.parametrize("reduce", ["none", "mean", "max", "sum"])
@pytest.mark.parametrize("heads", [None, [1, 6, 3]])
@pytest.mark.parametrize("case", ["plain", "everything"])
def test_attention_probs_reduced(reduce, heads, case):
    q, k, args = _attention_args(case, torch.float32, q_len=9, k_len=11)
    extra = (heads, reduce, True, 3, True)
    want = ops.attention_probs_reduced(q, k, *args, *extra)
    got = ops.attention_probs_reduced_generic(q, k, *args[:-1], 4, *extra)  # another query chunk on purpose
    for name, g, w in zip(("weights", "topk_values", "topk_indices", "entropy"), got, want):
        _close(g, w, 1e-6, name)


@pytest.mark.parametrize("heads", [None, [1, 6, 3]])
@pytest.mark.parametrize("case", ["plain", "everything"])
def test_attention_probs_reduced_output_from_values(heads, case):
    """The layer output P·V (every q head, selected or not) from the same probabilities, as the CPU kernel gives it."""
    q, k, args = _attention_args(case, torch.float32, q_len=9, k_len=11)
    v = torch.randn(k.shape[0], k.shape[1], k.shape[2], 5, generator=torch.Generator().manual_seed(3))
    extra = (heads, "mean", True, 0, False, v)
    want = ops.attention_probs_reduced(q, k, *args, *extra)
    got = ops.attention_probs_reduced_generic(q, k, *args[:-1], 4, *extra)
    assert got[4].shape == (q.shape[0], q.shape[2], q.shape[1], 5)
    _close(got[4], want[4], 1e-6, "output")
    probs = ops.attention_probs(q, k, *args)  # [B, H, Q, K]
    group = q.shape[1] // k.shape[1]
    reference = (probs.double() @ v.double().repeat_interleave(group, dim=1)).transpose(1, 2)
    _close(got[4].double(), reference, 1e-6, "output vs P·V")


def test_reduced_topk_ties_keep_the_lower_key():
    q, k = torch.zeros(1, 2, 4, 8), torch.zeros(1, 2, 6, 8)  # uniform rows: every probability ties
    args = (q, k, None, 1.0, True, 0, 0.0, None, 0, None, "none", False, 3, False)
    want, got = ops.attention_probs_reduced(*args), ops.attention_probs_reduced_generic(*args)
    assert torch.equal(got[2], want[2])


@pytest.mark.parametrize("case", ["plain", "causal_offset", "window", "everything"])
def test_attention_head_stats(case):
    q, k, args = _attention_args(case, torch.float32, q_len=12, k_len=12)
    ids = torch.randint(0, 4, (2, 12))
    valid = torch.ones(2, 12, dtype=torch.bool)
    valid[1, :3] = False  # left padding
    for extra in ((ids, valid, 3), (None, None, 0), (ids, None, 2)):
        want = ops.attention_head_stats(q, k, *args, *extra)
        got = ops.attention_head_stats_generic(q, k, *args[:-1], 5, *extra)
        _close(got[0], want[0], 1e-6 * max(1.0, want[0].abs().max().item()), "sums")
        _close(got[1], want[1], 0, "counts")


def _attn(layers=3, batch=2, heads=4, n=7, dtype=torch.float32):
    return torch.randn(layers, batch, heads, n, n, dtype=dtype).softmax(-1)


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("head_reduce", [0, 1])
@pytest.mark.parametrize("rows", [None, [6, 0, 3]])
def test_rollout_and_flow(residual, head_reduce, rows):
    attn = _attn()
    _close(ops.rollout_generic(attn, residual, head_reduce, rows), ops.rollout(attn, residual, head_reduce, rows), 1e-6)
    attn64 = attn.double()
    _close(ops.rollout_generic(attn64, residual, head_reduce, rows),
           ops.rollout(attn64, residual, head_reduce, rows), 1e-12)
    _close(ops.attention_flow_generic(attn, residual, head_reduce, rows, True),
           ops.attention_flow(attn, residual, head_reduce, rows, True), 0)


def test_relevance():
    attn, grad = _attn(), torch.randn(3, 2, 4, 7, 7)
    _close(ops.attention_grad_relevance_generic(attn, grad), ops.attention_grad_relevance(attn, grad), 1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_topk_merge_with_ties_nan_and_empty_slots(dtype):
    values = torch.full((5, 3), float("-inf"), dtype=dtype)
    keys = torch.full((5, 3), -1, dtype=torch.long)
    for step in range(3):
        block = torch.randint(0, 4, (6, 5)).to(dtype)  # many ties
        block[0, 1] = float("nan")
        block[2, 4] = float("-inf")
        new_keys = torch.arange(6) + 10 * step
        want = ops.topk_merge(values, keys, block, new_keys)
        got = ops.topk_merge_generic(values, keys, block, new_keys)
        for g, w in zip(got, want):
            _close(g, w, 0)
        values, keys = want[0], want[1]


def test_quadrature():
    bounds = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    for g, w in zip(ops.composite_gauss_legendre_generic(bounds, 4), ops.composite_gauss_legendre(bounds, 4)):
        _close(g, w, 0)
    errors = torch.tensor([0.1, 0.5, 0.01])
    _close(ops.refine_segments_generic(bounds, errors, 0.05, 2), ops.refine_segments(bounds, errors, 0.05, 2), 0)


def test_bad_inputs_name_what_was_wrong():
    q, k = torch.randn(1, 4, 3, 8), torch.randn(1, 2, 3, 8)
    with pytest.raises(ValueError, match="q must be \\[batch, q_heads, q_len, head_dim\\], got a 3-D"):
        ops.attention_probs_generic(q[0], k, None, 1.0, False, 0, 0.0, None, 0)
    with pytest.raises(ValueError, match="is not broadcastable"):
        ops.attention_probs_generic(q, k, torch.ones(1, 1, 3, 5, dtype=torch.bool), 1.0, False, 0, 0.0, None, 0)
    with pytest.raises(ValueError, match=r"head index 4 out of range: q has 4 heads \(0..3\)"):
        ops.attention_probs_reduced_generic(q, k, None, 1.0, False, 0, 0.0, None, 0, [4], "none", True, 0, False)
    with pytest.raises(ValueError, match="reduce must be one of"):
        ops.attention_probs_reduced_generic(q, k, None, 1.0, False, 0, 0.0, None, 0, None, "median", True, 0, False)
    with pytest.raises(ValueError, match="induction_period must be 0"):
        ops.attention_head_stats_generic(q, k, None, 1.0, False, 0, 0.0, None, 0, None, None, 1)
    with pytest.raises(ValueError, match="rows has 9, out of range"):
        ops.rollout_generic(_attn(), True, 0, [9])
    with pytest.raises(ValueError, match="attention weights must be finite"):
        ops.rollout_generic(-_attn(), True, 0, None)
    with pytest.raises(TypeError, match="keys and new_keys must be int64"):
        ops.topk_merge_generic(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(3, 2), torch.zeros(3))


def test_opcheck():
    q, k, args = _attention_args("everything", torch.float64)
    q.requires_grad_(), k.requires_grad_()
    checks = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")
    torch.library.opcheck(ops.attention_probs_generic.default, (q, k, *args), test_utils=checks)
    q, k = q.detach(), k.detach()
    fake = ("test_schema", "test_faketensor")
    torch.library.opcheck(ops.attention_probs_reduced_generic.default,
                          (q, k, *args, [0, 2], "mean", True, 2, True), test_utils=fake)
    torch.library.opcheck(ops.attention_head_stats_generic.default,
                          (q, k, *args, torch.randint(0, 3, (2, 9)), None, 2), test_utils=fake)
    torch.library.opcheck(ops.rollout_generic.default, (_attn(), True, 0, [1]), test_utils=fake)
    torch.library.opcheck(ops.topk_merge_generic.default,
                          (torch.randn(4, 2), torch.arange(8).view(4, 2), torch.randn(3, 4), torch.arange(3) + 8),
                          test_utils=fake)


def test_inside_torch_compile_forward_and_backward():
    q, k, args = _attention_args("everything", torch.float32)
    mask, scale, causal, window, softcap, sinks, _ = args

    def loss(q, k):
        return ops.attention_probs_generic(q, k, mask, scale, causal, window, softcap, sinks, 2).square().sum()

    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    q1, k1 = q.clone().requires_grad_(), k.clone().requires_grad_()
    q2, k2 = q.clone().requires_grad_(), k.clone().requires_grad_()
    compiled(q1, k1).backward()
    loss(q2, k2).backward()
    _close(q1.grad, q2.grad, 0)
    _close(k1.grad, k2.grad, 0)


def test_meta_shapes_come_from_the_fake_kernels():
    q, k = torch.empty(2, 8, 5, 16, device="meta"), torch.empty(2, 2, 9, 16, device="meta")
    assert ops.attention_probs_generic(q, k, None, 1.0, True, 0, 0.0, None, 0).shape == (2, 8, 5, 9)
    w = ops.attention_probs_reduced_generic(q, k, None, 1.0, True, 0, 0.0, None, 0, [1, 2], "none", True, 3, True)
    assert [tuple(t.shape) for t in w] == [(2, 2, 5, 9), (2, 2, 5, 3), (2, 2, 5, 3), (2, 2, 5), (0,)]
    assert ops.rollout_generic(torch.empty(3, 2, 4, 7, 7, device="meta"), True, 0, None).shape == (2, 7, 7)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", CASES)
def test_cuda_kernels_match_the_cpu(case):
    q, k, args = _attention_args(case, torch.float32)
    mask, scale, causal, window, softcap, sinks, chunk = args
    cuda = lambda t: None if t is None else t.cuda()  # noqa: E731
    want = ops.attention_probs(q, k, *args)
    got = ops.attention_probs(q.cuda(), k.cuda(), cuda(mask), scale, causal, window, softcap, cuda(sinks), chunk)
    assert got.device.type == "cuda"
    _close(got.cpu(), want, 1e-5)
    extra = (None, "mean", True, 3, True)
    for g, w in zip(ops.attention_probs_reduced(q.cuda(), k.cuda(), cuda(mask), scale, causal, window, softcap,
                                                cuda(sinks), chunk, *extra),
                    ops.attention_probs_reduced(q, k, *args, *extra)):
        _close(g.cpu(), w, 1e-5)
    attn = _attn()
    _close(ops.rollout(attn.cuda(), True, 0, None).cpu(), ops.rollout(attn, True, 0, None), 1e-5)
    _close(ops.attention_flow(attn.cuda(), True, 0, [1], True).cpu(), ops.attention_flow(attn, True, 0, [1], True), 0)
