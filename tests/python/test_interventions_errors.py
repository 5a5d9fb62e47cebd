"""Bad inputs to interventions and patching: each a clear error; the model's state restored after an exception
inside ``intervene``."""

from __future__ import annotations

import pytest
import torch

import attnscope as ats
from internal_models import build


@pytest.fixture(scope="module")
def llama():
    return build("llama")


def ids(n, seed=0):
    return torch.randint(3, 90, (1, n), generator=torch.Generator().manual_seed(seed))


def test_length_mismatch_says_how_to_align(llama):
    with pytest.raises(ValueError, match=r"clean example 0 has 8 tokens and corrupted example 0 has 7.*Align them"):
        ats.activation_patching(llama, ids(8), ids(7), metric=("logit_diff", 1, 2))
    with pytest.raises(ValueError, match="clean has 2 examples and corrupted has 1"):
        ats.attribution_patching(llama, torch.cat([ids(8), ids(8, 1)]), ids(8), metric=("logit_diff", 1, 2))


def test_non_scalar_metric_is_refused(llama):
    with pytest.raises(ValueError, match=r"one scalar per example.*Tensor\[1\]"):
        ats.activation_patching(llama, ids(8), ids(8, 1), metric=lambda out: out.logits[:, -1])
    with pytest.raises(ValueError, match="one scalar per example"):
        ats.attribution_patching(llama, ids(8), ids(8, 1), metric=lambda out: out.logits.sum(-1))


def test_metric_that_is_not_one(llama):
    with pytest.raises(ValueError, match=r"\('logit_diff', a, b\)"):
        ats.activation_patching(llama, ids(8), ids(8, 1), metric="logit_diff")
    with pytest.raises(ValueError, match="two tokens"):
        ats.activation_patching(llama, ids(8), ids(8, 1), metric=("logit_diff", 1))
    with pytest.raises(ValueError, match="tokenizer"):
        ats.activation_patching(llama, ids(8), ids(8, 1), metric=("logit_diff", "cat", "dog"))


def test_unknown_site(llama):
    with pytest.raises(ValueError, match=r"unknown site 'resid'.*resid_pre"):
        ats.activation_patching(llama, ids(8), ids(8, 1), metric=("logit_diff", 1, 2), sites=("resid",))
    with ats.intervene(llama) as iv, pytest.raises(ValueError, match="unknown site 'mlp'"):
        iv.add("mlp", 0, torch.zeros(32))
    with pytest.raises(ValueError, match="by='head'.*head_out"):
        ats.activation_patching(llama, ids(8), ids(8, 1), metric=("logit_diff", 1, 2), by="head")
    with pytest.raises(ValueError, match="unknown by="):
        ats.activation_patching(llama, ids(8), ids(8, 1), metric=("logit_diff", 1, 2), by="neuron")


def test_head_or_layer_out_of_range(llama):
    with ats.intervene(llama) as iv:
        with pytest.raises(ValueError, match=r"head 4 out of range: the model has 4 heads per layer \(0..3\)"):
            iv.ablate_heads({0: [4]})
        with pytest.raises(ValueError, match=r"layer 2 out of range: model has 2 layers"):
            iv.ablate_heads({2: [0]})
        with pytest.raises(ValueError, match="pass reference="):
            iv.ablate_heads({0: [0]}, how="mean")
        with pytest.raises(ValueError, match="unknown ablation"):
            iv.ablate_heads({0: [0]}, how="noise")
    with pytest.raises(ValueError, match="head 9 out of range"):
        ats.path_patching(llama, ids(8), ids(8, 1), metric=("logit_diff", 1, 2), senders=[(0, 9)])
    with pytest.raises(ValueError, match="layer 5 out of range"):
        ats.activation_patching(llama, ids(8), ids(8, 1), metric=("logit_diff", 1, 2), layers=[5])


def test_value_that_does_not_broadcast(llama):
    with ats.intervene(llama) as iv:
        iv.set("resid_post", 0, torch.zeros(7))
        with pytest.raises(ValueError, match=r"shape \(7,\) does not broadcast"):
            llama(ids(8))


def test_edits_outside_the_block_are_refused(llama):
    iv = ats.intervene(llama)
    with pytest.raises(RuntimeError, match="inside the `with ats.intervene"):
        iv.ablate_heads({0: [0]})


def test_grouped_query_kv_receivers_are_refused():
    model = build("qwen2")  # 4 query heads share 2 key/value heads
    with pytest.raises(ValueError, match="grouped-query"):
        ats.path_patching(model, ids(8), ids(8, 1), metric=("logit_diff", 1, 2), receiver_inputs=("k",))


def _state(model):
    return (model.training, [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            model.config._attn_implementation,
            sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()))


def test_state_restored_after_an_exception_inside_intervene():
    model = build("gpt2")
    model.train()
    model.transformer.h[0].requires_grad_(False)
    before = _state(model)
    x = ids(8)
    with torch.no_grad():
        reference = model.eval()(x).logits
    model.train()
    before = _state(model)
    with pytest.raises(KeyError, match="boom"):
        with ats.intervene(model) as iv:
            iv.ablate_heads({0: [1], 1: [0, 3]}, how="mean", reference=ids(8, 2))
            iv.add("resid_mid", 1, torch.ones(32))
            iv.set("head_out", 0, 0.0, positions=[1, 2], heads=[2])
            assert _state(model) != before
            raise KeyError("boom")
    assert _state(model) == before
    with torch.no_grad():
        assert torch.equal(model.eval()(x).logits, reference)


def test_state_restored_after_an_exception_inside_patching(llama):
    before = _state(llama)

    def metric(out):
        raise KeyError("metric failed")

    with pytest.raises(KeyError, match="metric failed"):
        ats.activation_patching(llama, ids(8), ids(8, 1), metric=metric)
    with pytest.raises(KeyError, match="metric failed"):
        ats.path_patching(llama, ids(8), ids(8, 1), metric=metric)
    assert _state(llama) == before


def test_ablation_and_site_arguments(llama):
    with ats.intervene(llama) as iv:
        with pytest.raises(TypeError, match=r"heads must be a dict \{layer: \[head, ...\]\}"):
            iv.ablate_heads([0, 1])
        with pytest.raises(ValueError, match="takes no reference batch"):
            iv.ablate_heads({0: [0]}, how="zero", reference=ids(8))
        with pytest.raises(ValueError, match="heads= applies to site 'head_out' only"):
            iv.set("resid_post", 0, 0.0, heads=[1])
        with pytest.raises(ValueError, match="positions must be non-negative"):
            iv.add("resid_post", 0, 0.0, positions=[-1])
    with pytest.raises(ValueError, match="receiver_inputs must be a non-empty subset"):
        ats.path_patching(llama, ids(8), ids(8, 1), metric=("logit_diff", 1, 2), receiver_inputs=("z",))
    with pytest.raises(ValueError, match="Continuation target changes the input's length"):
        ats.activation_patching(llama, ids(8), ids(8, 1), metric=ats.attribution.targets.Continuation("x"))
