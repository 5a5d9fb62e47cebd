"""attention_probs_reduced against reductions of the full attention_probs output (plain torch)."""

from __future__ import annotations

import pytest
import torch

from attnscope.ops import attention_probs, attention_probs_reduced


@pytest.fixture
def qk():
    return torch.randn(2, 8, 9, 16), torch.randn(2, 4, 11, 16)


@pytest.mark.parametrize("reduce", ["mean", "max", "sum"])
@pytest.mark.parametrize("heads", [None, [1, 6, 3]])
def test_head_reductions(qk, reduce, heads):
    q, k = qk
    full = attention_probs(q, k, is_causal=True, window=6)
    sel = full if heads is None else full[:, heads]
    want = {"mean": sel.mean(1), "max": sel.amax(1), "sum": sel.sum(1)}[reduce]
    got = attention_probs_reduced(q, k, is_causal=True, window=6, heads=heads, reduce=reduce, query_chunk=4)
    assert got.weights.shape == want.shape
    assert (got.weights - want).abs().max() <= 1e-6


def test_selected_heads_unreduced(qk):
    q, k = qk
    got = attention_probs_reduced(q, k, heads=[5, 0])
    assert torch.equal(got.weights, attention_probs(q, k)[:, [5, 0]])


def test_topk_and_entropy(qk):
    q, k = qk
    full = attention_probs(q, k, is_causal=True)
    got = attention_probs_reduced(q, k, is_causal=True, keep_weights=False, topk=3, entropy=True)
    assert got.weights.numel() == 0
    values, _ = full.topk(3, dim=-1)
    assert (got.topk_values - values).abs().max() <= 1e-7
    assert torch.equal(full.gather(-1, got.topk_indices), got.topk_values)
    plogp = torch.where(full > 0, full * full.log(), torch.zeros_like(full))
    assert (got.entropy + plogp.sum(-1)).abs().max() <= 1e-5


def test_bad_reduce_and_heads(qk):
    q, k = qk
    with pytest.raises(ValueError, match="reduce must be one of 'none', 'mean', 'max', 'sum', got 'median'"):
        attention_probs_reduced(q, k, reduce="median")
    with pytest.raises(ValueError, match=r"head index 8 out of range: q has 8 heads \(0..7\)"):
        attention_probs_reduced(q, k, heads=[8])
    with pytest.raises(ValueError, match="topk must be between 0 and k_len=11, got 12"):
        attention_probs_reduced(q, k, topk=12)


def test_opcheck_reduced(qk):
    q, k = qk
    op = torch.ops.attnscope.attention_probs_reduced.default
    torch.library.opcheck(op, (q, k, None, 0.25, True, 0, 0.0, None, 3, [0, 2], "mean", True, 2, True),
                          test_utils=("test_schema", "test_faketensor"))
