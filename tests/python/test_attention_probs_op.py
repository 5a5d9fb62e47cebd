"""torch.ops.attnscope.attention_probs against plain PyTorch and transformers' eager attention."""

from __future__ import annotations

import types

import pytest
import torch

import attnscope
from attnscope.ops import attention_probs

from attention_reference import attention_probs as reference  # plain PyTorch in float64


CASES = {
    "plain": dict(),
    "causal_offset": dict(is_causal=True),
    "window": dict(is_causal=True, window=3),
    "softcap": dict(softcap=0.8),
    "sinks": dict(sinks=True, is_causal=True),
    "everything": dict(is_causal=True, window=4, softcap=1.5, sinks=True),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_plain_reference(case, dtype):
    opts = dict(CASES[case])
    q = torch.randn(2, 8, 5, 16, dtype=dtype)
    k = torch.randn(2, 2, 9, 16, dtype=dtype)
    sinks = torch.randn(8, dtype=dtype) if opts.pop("sinks", False) else None
    mask = torch.rand(2, 1, 5, 9) > 0.2
    got = attention_probs(q, k, mask, scale=0.4, sinks=sinks, **opts)
    want = reference(q, k, mask, scale=0.4, sinks=sinks, **opts)
    assert got.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert (got.double() - want).abs().max().item() <= (1e-12 if dtype == torch.float64 else 1e-6)


def test_default_scale_is_inverse_sqrt_head_dim():
    q, k = torch.randn(1, 2, 4, 16), torch.randn(1, 2, 4, 16)
    assert torch.allclose(attention_probs(q, k), attention_probs(q, k, scale=0.25), atol=0, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_give_float32(dtype):
    q, k = torch.randn(1, 4, 6, 8).to(dtype), torch.randn(1, 2, 6, 8).to(dtype)
    got = attention_probs(q, k, is_causal=True)
    assert got.dtype == torch.float32
    assert (got.double() - reference(q, k, scale=8**-0.5, is_causal=True)).abs().max() <= 1e-6


def test_additive_finfo_min_mask_behaves_like_eager():
    # Hugging Face's eager attention adds finfo.min; a row masked entirely that way is uniform, as in eager.
    q, k = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 8)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 2, :] = torch.finfo(torch.float32).min
    mask[..., 0, 3] = torch.finfo(torch.float32).min
    got = attention_probs(q, k, mask)
    eager = torch.softmax(q @ k.transpose(-1, -2) * 8**-0.5 + mask, dim=-1)
    assert (got - eager).abs().max() <= 1e-6


def test_fully_masked_rows_are_zero_not_nan():
    q, k = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 8)
    mask = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    mask[..., 1, :] = False
    got = attention_probs(q, k, mask)
    assert not got.isnan().any()
    assert got[..., 1, :].abs().max() == 0
    assert torch.allclose(got[..., 0, :].sum(-1), torch.ones(1, 2))


@pytest.mark.parametrize("chunk", range(1, 8))
def test_every_query_chunk_is_bitwise_identical(chunk):
    q, k = torch.randn(2, 4, 7, 32), torch.randn(2, 2, 11, 32)
    whole = attention_probs(q, k, is_causal=True, window=5, softcap=3.0)
    assert torch.equal(attention_probs(q, k, is_causal=True, window=5, softcap=3.0, query_chunk=chunk), whole)


def _llama_eager(q, k, mask, scaling):
    """transformers' own eager attention function of the Llama implementation."""
    from transformers.models.llama.modeling_llama import eager_attention_forward

    module = types.SimpleNamespace(num_key_value_groups=q.shape[1] // k.shape[1], training=False)
    v = torch.randn_like(k)
    _, weights = eager_attention_forward(module, q, k, v, mask, scaling=scaling, dropout=0.0)
    return weights


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_matches_transformers_llama_eager(kv_heads):
    batch, heads, length, head_dim = 2, 4, 12, 16
    q = torch.randn(batch, heads, length, head_dim)
    k = torch.randn(batch, kv_heads, length, head_dim)
    # A causal, left-padded additive mask as transformers builds it for eager attention.
    min_value = torch.finfo(torch.float32).min
    keep = torch.ones(batch, length, dtype=torch.bool)
    keep[1, :3] = False
    allowed = torch.tril(torch.ones(length, length, dtype=torch.bool))[None] & keep[:, None, :]
    additive = torch.zeros(batch, 1, length, length).masked_fill(~allowed[:, None], min_value)
    scaling = head_dim**-0.5
    want = _llama_eager(q, k, additive, scaling)
    got_additive = attention_probs(q, k, additive, scale=scaling)
    assert (got_additive - want).abs().max().item() <= 1e-6
    # The boolean form of the same mask gives the same rows wherever a row sees at least one key.
    got_bool = attention_probs(q, k, allowed[:, None], scale=scaling)
    rows = allowed.any(-1)[:, None, :, None].expand_as(want)
    assert (got_bool - want)[rows].abs().max().item() <= 1e-6
    # ... and so does is_causal plus a key-padding mask.
    got_causal = attention_probs(q, k, keep[:, None, None, :], scale=scaling, is_causal=True)
    assert (got_causal - want)[rows].abs().max().item() <= 1e-6


def test_gradcheck_float64():
    q = torch.randn(1, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 2, 7, 6, dtype=torch.float64, requires_grad=True)
    sinks = torch.randn(4, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(1, 1, 5, 7) > 0.2

    def fn(q, k, sinks):
        return attention_probs(q, k, mask, scale=0.7, is_causal=True, window=5, softcap=1.3, sinks=sinks, query_chunk=2)

    assert torch.autograd.gradcheck(fn, (q, k, sinks), eps=1e-6, atol=1e-7)
    assert torch.autograd.gradcheck(lambda q, k: attention_probs(q, k, scale=0.3), (q, k))


def test_gradient_matches_autograd_of_reference():
    q = torch.randn(2, 4, 5, 8, requires_grad=True)
    k = torch.randn(2, 2, 6, 8, requires_grad=True)
    upstream = torch.randn(2, 4, 5, 6)
    (attention_probs(q, k, scale=0.5, softcap=2.0, is_causal=True) * upstream).sum().backward()
    q2, k2 = q.detach().clone().requires_grad_(), k.detach().clone().requires_grad_()
    (reference(q2, k2, scale=0.5, softcap=2.0, is_causal=True).float() * upstream).sum().backward()
    assert (q.grad - q2.grad).abs().max() <= 1e-5
    assert (k.grad - k2.grad).abs().max() <= 1e-5


def test_bfloat16_gradients_come_back_in_input_dtype():
    q = torch.randn(1, 2, 3, 8).bfloat16().requires_grad_()
    k = torch.randn(1, 2, 3, 8).bfloat16().requires_grad_()
    attention_probs(q, k).sum().backward()
    assert q.grad.dtype == torch.bfloat16 and k.grad.dtype == torch.bfloat16


def test_opcheck():
    q = torch.randn(2, 4, 5, 8, requires_grad=True)
    k = torch.randn(2, 2, 7, 8, requires_grad=True)
    sinks = torch.randn(4, requires_grad=True)
    mask = torch.rand(2, 1, 5, 7) > 0.3
    op = torch.ops.attnscope.attention_probs.default
    torch.library.opcheck(op, (q, k, mask, 0.35, True, 0, 0.0, None, 0))
    torch.library.opcheck(op, (q, k, None, 0.35, False, 3, 2.0, sinks, 2))
    torch.library.opcheck(op, (q.detach(), k.detach(), mask.float(), 0.35, False, 0, 0.0, None, 1))


def test_inside_torch_compile_fullgraph():
    q = torch.randn(1, 4, 6, 8)
    k = torch.randn(1, 2, 6, 8)

    @torch.compile(fullgraph=True, backend="inductor")
    def fn(q, k):
        return attention_probs(q * 2.0, k, is_causal=True).sum(-1) + 1.0

    torch._dynamo.reset()
    assert torch.allclose(fn(q, k), attention_probs(q * 2.0, k, is_causal=True).sum(-1) + 1.0)


# --- bad input: each raises a Python exception naming the argument and the observed value ---------------

def test_bad_q_rank():
    with pytest.raises(ValueError, match=r"q must be \[batch, q_heads, q_len, head_dim\], got a 3-D tensor of shape \[4, 3, 8\]"):
        attention_probs(torch.randn(4, 3, 8), torch.randn(1, 4, 3, 8))


def test_bad_head_dim():
    with pytest.raises(ValueError, match=r"head_dim of q and k differ: q has head_dim 8 .* k has head_dim 7"):
        attention_probs(torch.randn(1, 4, 3, 8), torch.randn(1, 4, 3, 7), scale=1.0)


def test_q_heads_not_divisible_by_kv_heads():
    with pytest.raises(ValueError, match=r"q_heads must be a multiple of kv_heads, got q_heads=4 and kv_heads=3"):
        attention_probs(torch.randn(1, 4, 3, 8), torch.randn(1, 3, 3, 8))


def test_wrong_mask_shape():
    with pytest.raises(ValueError, match=r"mask of shape \[1, 1, 3, 5\] is not broadcastable to \[batch=1, 1 or q_heads=4, q_len=3, k_len=3\]"):
        attention_probs(torch.randn(1, 4, 3, 8), torch.randn(1, 4, 3, 8), torch.ones(1, 1, 3, 5, dtype=torch.bool))


def test_negative_query_chunk():
    with pytest.raises(ValueError, match=r"query_chunk must be >= 0 \(0 = automatic\), got -2"):
        attention_probs(torch.randn(1, 4, 3, 8), torch.randn(1, 4, 3, 8), query_chunk=-2)


def test_sinks_of_wrong_length():
    with pytest.raises(ValueError, match=r"sinks must be \[q_heads\] = \[4\], got shape \[3\]"):
        attention_probs(torch.randn(1, 4, 3, 8), torch.randn(1, 4, 3, 8), sinks=torch.zeros(3))


def test_integer_q_is_a_type_error():
    with pytest.raises(TypeError, match=r"q must be float16, bfloat16, float32 or float64, got Long"):
        attention_probs(torch.ones(1, 1, 2, 2, dtype=torch.long), torch.randn(1, 1, 2, 2), scale=1.0)


def test_version_and_config():
    assert attnscope.__version__
    cfg = attnscope.config()
    assert cfg["torch (built against)"] == cfg["torch (running)"] == torch.__version__
    assert cfg["eigen"].count(".") == 2
