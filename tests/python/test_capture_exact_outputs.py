"""Capture never changes what the model computes: for every family of tiny_models the output under capture equals
the output without capture, T5's relative position bias is honoured (capture equals eager attention in the
encoder, the decoder and cross attention), and attention arguments the capture cannot honour are refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from tiny_models import FAMILIES, SEQ2SEQ, batch, build, seq2seq_batch

import attnscope as ats
from attnscope.testing import assert_attention_matches_eager


def _inputs(kind: str):
    return seq2seq_batch("right") if kind in SEQ2SEQ else batch(kind, "right")


def _main_output(outputs) -> torch.Tensor:
    return outputs.logits if getattr(outputs, "logits", None) is not None else outputs.last_hidden_state


@pytest.mark.parametrize("options", [{}, {"reduce": "mean", "layers": [1]}], ids=["full", "reduced"])
@pytest.mark.parametrize("kind", FAMILIES)
def test_output_under_capture_equals_output_without(kind, options):
    model = build(kind)
    inputs = _inputs(kind)
    with torch.no_grad():
        want = _main_output(model(**inputs))
        with ats.capture(model, **options) as cap:
            got = _main_output(model(**inputs))
    assert cap.calls > 0  # the capture ran (not the eager fallback)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def _counting_sdpa(monkeypatch) -> list[int]:
    calls = [0]
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def counted(*args, **kwargs):
        calls[0] += 1
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counted)
    return calls


@pytest.mark.parametrize("options", [{"reduce": "mean"}, {"heads": [1]}, {"topk": 2}], ids=["mean", "head", "topk"])
def test_inference_capture_computes_attention_once(monkeypatch, options):
    # Recording without autograd, the layer output is P·V of the captured probabilities: the model's SDPA never runs
    # (q·kᵀ is not computed twice), and the output is the model's own to float rounding.
    model = build("llama")
    inputs = batch("llama", "right")
    with torch.no_grad():
        want = model(**inputs).logits
        calls = _counting_sdpa(monkeypatch)
        with ats.capture(model, **options) as cap:
            got = model(**inputs).logits
    assert cap.calls == 2 and calls[0] == 0
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_capture_with_autograd_keeps_the_models_differentiable_output(monkeypatch):
    model = build("llama")
    inputs = batch("llama", "right")
    calls = _counting_sdpa(monkeypatch)
    with ats.capture(model, reduce="mean") as cap:
        logits = model(**inputs).logits
    assert calls[0] == 2 and logits.requires_grad
    logits.sum().backward()
    assert model.model.layers[0].self_attn.q_proj.weight.grad is not None
    assert cap.calls == 2


@pytest.mark.parametrize("kind", ["t5", "bart_lm"])
def test_encoder_decoder_generate_under_capture_is_unchanged(kind):
    model = build(kind)
    inputs = batch(kind, "right")
    with torch.no_grad():
        want = model.generate(**inputs, max_new_tokens=4, do_sample=False, output_scores=True,
                              return_dict_in_generate=True)
        with ats.capture(model) as cap:
            got = model.generate(**inputs, max_new_tokens=4, do_sample=False, output_scores=True,
                                 return_dict_in_generate=True)
    assert torch.equal(got.sequences, want.sequences)
    torch.testing.assert_close(torch.stack(got.scores), torch.stack(want.scores), atol=1e-5, rtol=0)
    steps = want.sequences.shape[1] - 1  # decoder queries: the start token and all but the last generated token
    assert cap.result.cross.weights.shape[-2:] == (steps, inputs["input_ids"].shape[1])


@pytest.mark.parametrize("padding", [None, "right"])
def test_t5_capture_equals_eager_in_every_stack(padding):
    model = build("t5")
    assert_attention_matches_eager(model, seq2seq_batch(padding))
    assert_attention_matches_eager(model, batch("t5", padding))  # decoder inputs built as generate starts


def test_t5_relative_bias_is_in_the_captured_weights():
    # Without the bias the captured rows would be softmax(q k^T): check the capture is not that.
    model = build("t5")
    inputs = seq2seq_batch(None)
    res = ats.capture_attention(model, inputs, layers=[0])
    enc = model.encoder.block[0].layer[0].SelfAttention
    with torch.no_grad():
        h = model.encoder.block[0].layer[0].layer_norm(model.shared(inputs["input_ids"]))
        q = enc.q(h).view(1, -1, 4, 8).transpose(1, 2)
        k = enc.k(h).view(1, -1, 4, 8).transpose(1, 2)
        no_bias = torch.softmax(q @ k.transpose(-1, -2), -1)
        bias = enc.compute_bias(q.shape[2], k.shape[2])
        with_bias = torch.softmax(q @ k.transpose(-1, -2) + bias, -1)
    torch.testing.assert_close(res.encoder.weights[0], with_bias, atol=1e-5, rtol=0)
    assert (res.encoder.weights[0] - no_bias).abs().max() > 1e-2


class _ToyAttention(nn.Module):
    """An attention module that hands its attention function an argument capture does not know (an ALiBi bias)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
        from transformers.models.llama.modeling_llama import eager_attention_forward

        q = self.proj(x).view(x.shape[0], x.shape[1], 2, 4).transpose(1, 2)
        fn = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        alibi = torch.zeros(1, 2, x.shape[1], x.shape[1])
        self.num_key_value_groups = 1
        out, _ = fn(self, q, q, q, None, scaling=0.5, dropout=0.0, alibi=alibi)
        return out


def test_an_argument_capture_cannot_honour_is_refused_by_name():
    from transformers import PretrainedConfig

    model = _ToyAttention(PretrainedConfig())
    model.eval()
    with pytest.raises(ValueError, match=r"_ToyAttention passes alibi=Tensor\(1, 2, 3, 3\)"):
        with ats.capture(model):
            model(torch.randn(1, 3, 8))
    assert model.config._attn_implementation in (None, "eager")  # restored after the error


def test_attention_dropout_in_training_mode_warns():
    import transformers as tf

    model = tf.LlamaForCausalLM(tf.LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=48,
                                               num_hidden_layers=1, num_attention_heads=4, attention_dropout=0.5))
    model.train()
    with pytest.warns(RuntimeWarning, match="training mode with attention dropout 0.5.*model.eval()"):
        ats.capture_attention(model, torch.tensor([[5, 6, 7]]))
    model.eval()
    assert ats.capture_attention(model, torch.tensor([[5, 6, 7]])).weights is not None
