"""Models loaded with accelerate's device_map: a cpu/disk split of a tiny Llama (layer 1 offloaded to a folder and
streamed in by accelerate's hooks) gives what the unsplit model gives, for capture, attribution, generation
attribution, head statistics, the logit lens and activations; inputs go to the embedding's device and accelerate's
hooks stay as they were. The cuda:0/cpu/disk split of the same check runs in bench/gpu_check.sh."""

from __future__ import annotations

import pytest
import torch
from tiny_models import batch, build

import attnscope as ats

pytest.importorskip("accelerate")

SPLIT = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
         "model.norm": "cpu", "lm_head": "cpu"}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    model = build("llama", attn="eager")
    folder = tmp_path_factory.mktemp("llama")
    model.save_pretrained(folder)
    split = AutoModelForCausalLM.from_pretrained(folder, device_map=SPLIT, dtype=torch.float32,
                                                 offload_folder=str(tmp_path_factory.mktemp("offload")))
    split.set_attn_implementation("eager")
    split.eval()
    assert split.hf_device_map["model.layers.1"] == "disk"
    assert split.model.layers[1].self_attn.q_proj.weight.device.type == "meta"  # really offloaded
    return model, split


def _hooks(model):
    return [(name, type(getattr(m, "_hf_hook", None)).__name__, len(m._forward_hooks), len(m._forward_pre_hooks))
            for name, m in model.named_modules()]


def _same(a, b, tol=1e-5):
    assert a.shape == b.shape
    assert (a.double() - b.double()).abs().max().item() <= tol


def test_capture_and_head_stats(pair):
    model, split = pair
    before = _hooks(split)
    inputs = batch("llama", "left")
    _same(ats.capture_attention(split, inputs).weights, ats.capture_attention(model, inputs).weights, 1e-6)
    _same(ats.capture_attention(split, inputs, reduce="mean").weights,
          ats.capture_attention(model, inputs, reduce="mean").weights, 1e-6)
    got = ats.head_stats(split, None, inputs["input_ids"], progress=False)
    want = ats.head_stats(model, None, inputs["input_ids"], progress=False)
    for name in want.names:
        assert torch.allclose(got.scores[name], want.scores[name], atol=1e-6, equal_nan=True), name
    assert _hooks(split) == before


def test_attribution(pair):
    model, split = pair
    inputs = batch("llama", None)
    for method in ("saliency", "integrated_gradients"):
        want = ats.attribute(model, inputs, method=method)
        got = ats.attribute(split, inputs, method=method)
        _same(got.scores, want.scores)


def test_generation_attribution(pair):
    model, split = pair
    prompt = batch("llama", None)["input_ids"][0, :6]
    want = ats.attribute_generation(model, None, prompt, max_new_tokens=3)
    got = ats.attribute_generation(split, None, prompt, max_new_tokens=3)
    assert torch.equal(got.generated_ids, want.generated_ids)
    _same(got.matrix, want.matrix)


def test_lens_and_activations(pair):
    model, split = pair
    inputs = batch("llama", None)
    want, got = ats.logit_lens(model, inputs, top_k=3), ats.logit_lens(split, inputs, top_k=3)
    assert torch.equal(got.topk_ids, want.topk_ids)
    _same(got.topk_probs, want.topk_probs)
    sites = ("resid_post", "attn_out", "mlp_out")
    want = ats.capture_activations(model, inputs, sites=sites)
    got = ats.capture_activations(split, inputs, sites=sites)
    for site in sites:
        _same(got[site], want[site])
