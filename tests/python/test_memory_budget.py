"""memory_budget= is honoured (the measured peak above the call's start stays within it) or refused before any
forward; reduced capture at a long context stays far below eager output_attentions. Peaks come from
attnscope.memory.peak_memory (the PyTorch profiler's allocation trace on the CPU)."""

from __future__ import annotations

import pytest
import torch

import attnscope as ats
from attnscope.attribution.chunking import estimate_row_bytes
from attnscope.memory import peak_memory

MiB = 2**20


def _llama(heads=4, kv=2, hidden=32, positions=128):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                      num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=positions)
    return LlamaForCausalLM(cfg).eval()


def _ids(length, batch=1):
    return torch.randint(3, 97, (batch, length), generator=torch.Generator().manual_seed(0))


def test_peak_memory_counts_what_a_call_allocates():
    def work():
        a = torch.ones(1 << 20)  # 4 MiB, freed before the end
        b = torch.ones(1 << 19)  # 2 MiB, returned
        del a
        return b + 0  # 2 MiB more

    out, peak = peak_memory(work)
    assert out.numel() == 1 << 19
    assert 6 * MiB <= peak < 7 * MiB


def test_a_budget_too_small_for_one_row_is_refused_before_any_forward():
    model = _llama()
    calls = []
    handle = model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(ValueError, match=r"memory_budget=1000 bytes cannot hold one row of 64 tokens, which needs "
                                             r"about \d+ bytes"):
            ats.attribute(model, _ids(64), method="integrated_gradients", memory_budget=1000)
        with pytest.raises(ValueError, match="memory_budget=1000 bytes cannot hold one row"):
            ats.attribute_generation(model, None, _ids(8)[0], max_new_tokens=2, memory_budget=1000)
    finally:
        handle.remove()
    assert calls == []


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_attribution_peak_stays_within_the_budget(attn):
    model = _llama()
    model.set_attn_implementation(attn)
    ids = _ids(64)
    budget = 4 * estimate_row_bytes(model, 64, 97)
    res, peak = peak_memory(lambda: ats.attribute(model, ids, method="integrated_gradients", n_steps=8,
                                                  memory_budget=budget, progress=False))
    assert torch.isfinite(res.scores).all()
    assert peak <= budget, (peak, budget)
    # The budget is used, not ignored: a budget of one row runs more, smaller chunks within its own bound.
    _, small = peak_memory(lambda: ats.attribute(model, ids, method="integrated_gradients", n_steps=8,
                                                 memory_budget=budget // 4, progress=False))
    assert small <= budget // 4, (small, budget // 4)


def test_reduced_capture_at_a_long_context_is_far_below_eager():
    length = 1024
    model = _llama(heads=32, kv=8, hidden=64, positions=length)
    ids = _ids(length)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        _, eager = peak_memory(lambda: model(ids, output_attentions=True).attentions)
    model.set_attn_implementation("sdpa")
    res, ours = peak_memory(lambda: ats.capture_attention(model, ids, reduce="mean"))
    assert res.weights.shape == (2, 1, length, length)
    assert ours <= eager / 20, (ours / MiB, eager / MiB)
