"""attnscope.analysis.rollout against a plain-PyTorch matrix-product chain."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from attnscope import ops
from attnscope.analysis import rollout

from attention_reference import rollout as reference  # the paper's matrix chain in torch


def random_attention(layers, batch, heads, length, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(layers, batch, heads, length, length, generator=g, dtype=torch.float64)
    return (a / a.sum(-1, keepdim=True)).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("layers,batch,heads,length", [(1, 1, 1, 1), (1, 2, 3, 5), (6, 3, 4, 17), (12, 1, 12, 40)])
def test_matches_matrix_chain(dtype, layers, batch, heads, length):
    attn = random_attention(layers, batch, heads, length, dtype)
    out = rollout(attn)
    assert out.shape == (batch, length, length)
    assert out.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert (out.double() - reference(attn)).abs().max().item() <= 1e-6
    # rows of a product of row-stochastic matrices sum to one
    assert torch.allclose(out.double().sum(-1), torch.ones(batch, length, dtype=torch.float64), atol=1e-5)


def test_float64_is_exact_to_rounding():
    attn = random_attention(8, 2, 4, 21)
    assert (rollout(attn) - reference(attn)).abs().max().item() <= 1e-13


def test_rows_are_rows_of_the_full_result():
    attn = random_attention(5, 2, 3, 13)
    full = rollout(attn)
    assert torch.allclose(rollout(attn, rows=[12, 0, 5]), full[:, [12, 0, 5]], rtol=0, atol=1e-14)
    assert torch.allclose(rollout(attn, rows=-1), full[:, [12]], rtol=0, atol=1e-14)
    assert torch.allclose(rollout(attn, rows=range(3)), full[:, :3], rtol=0, atol=1e-14)
    assert torch.allclose(rollout(attn, rows=torch.tensor([4, 4])), full[:, [4, 4]], rtol=0, atol=1e-14)
    assert rollout(attn, rows=[]).shape == (2, 0, 13)


def test_head_reduce_max():
    attn = random_attention(4, 2, 5, 9)
    out = rollout(attn, head_reduce="max")
    assert (out - reference(attn, head_reduce="max")).abs().max().item() <= 1e-6
    assert (out - rollout(attn)).abs().max().item() > 1e-3  # it is not the mean
    assert torch.allclose(rollout(attn, head_reduce="max", rows=[2]), out[:, [2]], rtol=0, atol=1e-14)


def test_residual_false_uses_attention_as_is():
    attn = random_attention(4, 2, 3, 10)
    out = rollout(attn, residual=False)
    assert (out - reference(attn, residual=False)).abs().max().item() <= 1e-6
    a = attn.mean(2)
    assert torch.allclose(out, a[3] @ a[2] @ a[1] @ a[0], rtol=0, atol=1e-14)
    # max without residual is not renormalised: the product of raw maxima
    m = attn.amax(2)
    assert torch.allclose(rollout(attn, residual=False, head_reduce="max"), m[3] @ m[2] @ m[1] @ m[0], atol=1e-13)


def test_causal_attention():
    attn = random_attention(6, 1, 2, 12).tril()
    attn = attn / attn.sum(-1, keepdim=True)
    out = rollout(attn)
    assert (out - reference(attn)).abs().max().item() <= 1e-6
    assert out.triu(1).abs().max().item() == 0.0  # no position draws on later tokens


def test_attention_result_and_head_reduced_weights():
    attn = random_attention(3, 2, 4, 7)
    assert torch.equal(rollout(SimpleNamespace(weights=attn)), rollout(attn))
    reduced = attn.mean(2)  # what capture_attention(reduce="mean") keeps: [layer, batch, query, key]
    assert torch.allclose(rollout(SimpleNamespace(weights=reduced)), rollout(attn), rtol=0, atol=1e-14)
    assert torch.allclose(rollout(reduced.unsqueeze(2)), rollout(attn), rtol=0, atol=1e-14)


def test_bare_4d_tensor_is_refused():
    # one layer's [batch, head, query, key] would otherwise be read as [layer, batch, query, key]
    with pytest.raises(ValueError, match=r"got a 4-D tensor of shape \(2, 3, 7, 7\); stack"):
        rollout(random_attention(1, 2, 3, 7)[0])


def test_identity_attention_is_identity():
    attn = torch.eye(6, dtype=torch.float64).expand(5, 2, 3, 6, 6)
    assert torch.equal(rollout(attn), torch.eye(6, dtype=torch.float64).expand(2, 6, 6))


def test_opcheck():
    attn = random_attention(3, 2, 2, 5)
    torch.library.opcheck(torch.ops.attnscope.rollout.default, (attn, True, 0, None))
    torch.library.opcheck(torch.ops.attnscope.rollout.default, (attn.float(), False, 1, [4, 1]))


# ---- bad input -------------------------------------------------------------------------------------------------


def test_rows_out_of_range_names_valid_range():
    attn = random_attention(2, 1, 2, 8)
    with pytest.raises(ValueError, match=r"rows has 8, out of range for 8 query positions \(valid: 0\.\.7, or -8\.\.-1"):
        rollout(attn, rows=[0, 8])
    with pytest.raises(ValueError, match=r"rows has -9"):
        rollout(attn, rows=-9)
    with pytest.raises(ValueError, match="rows must be integers"):
        rollout(attn, rows=[1.5])


def test_rows_out_of_range_in_the_op():
    attn = random_attention(2, 1, 2, 8)
    with pytest.raises(ValueError, match=r"valid: 0\.\.7"):
        ops.rollout(attn, rows=[-1])


@pytest.mark.parametrize("shape", [(8, 8), (1, 8, 8), (2, 1, 2, 1, 8, 8)])
def test_wrong_number_of_dims(shape):
    with pytest.raises(ValueError, match=r"\[layer, batch, head, query, key\].*got a \d-D tensor"):
        rollout(torch.rand(shape))


def test_wrong_number_of_dims_in_the_op():
    with pytest.raises(ValueError, match=r"got a 4-D tensor"):
        ops.rollout(torch.rand(2, 1, 8, 8))


def test_unknown_head_reduce():
    with pytest.raises(ValueError, match=r"head_reduce must be 'mean' or 'max', got 'sum'"):
        rollout(random_attention(2, 1, 2, 4), head_reduce="sum")
    with pytest.raises(ValueError, match="head_reduce must be 0 \\(mean\\) or 1 \\(max\\), got 7"):
        torch.ops.attnscope.rollout(random_attention(2, 1, 2, 4), True, 7, None)


def test_negative_weights():
    with pytest.raises(ValueError, match="finite and >= 0"):
        rollout(random_attention(2, 1, 2, 4) - 0.5)


def test_nan_weights():
    attn = random_attention(2, 1, 2, 4)
    attn[1, 0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="finite and >= 0"):
        rollout(attn)


def test_query_key_mismatch():
    with pytest.raises(ValueError, match="query=3 and key=5"):
        rollout(torch.rand(2, 1, 2, 3, 5))


def test_not_a_tensor():
    with pytest.raises(TypeError, match="got list"):
        rollout([[0.5, 0.5]])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_are_read_as_they_are(dtype):
    attn = random_attention(4, 2, 3, 9, dtype)
    out = rollout(attn)
    assert out.dtype == torch.float32
    assert (out.double() - reference(attn)).abs().max().item() <= 1e-6  # reference reads the same rounded weights


def test_non_contiguous_weights():
    attn = random_attention(3, 2, 4, 8).transpose(1, 2).contiguous().transpose(1, 2)  # [layer, batch, head, ...] view
    assert not attn.is_contiguous()
    assert (rollout(attn) - reference(attn)).abs().max().item() <= 1e-13
