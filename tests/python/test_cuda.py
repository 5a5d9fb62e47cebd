"""The public functions on a CUDA model against the same model on the CPU (run by bench/gpu_check.sh on a GPU
machine; skipped without CUDA). Results land on the CPU either way; the work runs on the model's device, through the
device-generic kernels."""

from __future__ import annotations

import copy

import pytest
import torch
from tiny_models import batch, build

import attnscope as ats

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(scope="module", autouse=True)
def _exact_float32():
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = saved


def _pair(kind):
    cpu = build(kind)
    return cpu, copy.deepcopy(cpu).cuda()


def _close(got, want, tol=1e-4):
    assert (got.detach().cpu().double() - want.detach().cpu().double()).abs().max().item() <= tol


@pytest.mark.parametrize("kind", ["llama", "qwen2", "mistral", "gemma2", "gpt_oss", "gpt2", "bert"])
def test_capture(kind):
    cpu, gpu = _pair(kind)
    inputs = batch(kind, "left")
    _close(ats.capture_attention(gpu, inputs).weights, ats.capture_attention(cpu, inputs).weights)
    for reduce in ("mean", "max"):
        _close(ats.capture_attention(gpu, inputs, reduce=reduce).weights,
               ats.capture_attention(cpu, inputs, reduce=reduce).weights)
    got = ats.capture_attention(gpu, inputs, topk=3, entropy=True)
    want = ats.capture_attention(cpu, inputs, topk=3, entropy=True)
    _close(got.entropy, want.entropy)
    _close(got.topk_values, want.topk_values)


def test_analysis_and_statistics():
    cpu, gpu = _pair("llama")
    inputs = batch("llama", None)
    res_cpu, res_gpu = ats.capture_attention(cpu, inputs), ats.capture_attention(gpu, inputs)
    _close(ats.rollout(res_gpu, rows=[-1]), ats.rollout(res_cpu, rows=[-1]))
    _close(ats.attention_flow(res_gpu, rows=[-1]), ats.attention_flow(res_cpu, rows=[-1]))
    got = ats.head_stats(gpu, None, inputs["input_ids"], progress=False)
    want = ats.head_stats(cpu, None, inputs["input_ids"], progress=False)
    for name in want.names:
        assert torch.allclose(got.scores[name], want.scores[name], atol=1e-4, equal_nan=True), name


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "occlusion"])
def test_attribution(method):
    cpu, gpu = _pair("llama")
    inputs = batch("llama", None)
    _close(ats.attribute(gpu, inputs, method=method).scores, ats.attribute(cpu, inputs, method=method).scores)


def test_generation_lens_and_activations():
    cpu, gpu = _pair("llama")
    prompt = batch("llama", None)["input_ids"][0, :6]
    want = ats.attribute_generation(cpu, None, prompt, max_new_tokens=3, progress=False)
    got = ats.attribute_generation(gpu, None, prompt, continuation=want.generated_ids, progress=False)
    _close(got.matrix, want.matrix)
    inputs = batch("llama", None)
    _close(ats.logit_lens(gpu, inputs, top_k=3).topk_probs, ats.logit_lens(cpu, inputs, top_k=3).topk_probs)
    _close(ats.capture_activations(gpu, inputs, sites=("resid_post",))["resid_post"],
           ats.capture_activations(cpu, inputs, sites=("resid_post",))["resid_post"])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_on_cuda(dtype):
    model = build("llama").cuda().to(dtype)
    inputs = batch("llama", None)
    res = ats.capture_attention(model, inputs)
    assert res.weights.dtype == torch.float32 and torch.isfinite(res.weights).all()
    scores = ats.attribute(model, inputs, method="integrated_gradients").scores
    assert scores.dtype == torch.float32 and torch.isfinite(scores).all()
