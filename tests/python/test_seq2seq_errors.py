"""Encoder-decoder inputs and options attnscope does not handle get an error that names them."""

from __future__ import annotations

import pytest
import torch
from tiny_models import build, seq2seq_batch

import attnscope as ats


def test_a_model_without_a_decoder_start_token_asks_for_decoder_inputs():
    model = build("t5")
    model.generation_config.decoder_start_token_id = None
    model.config.decoder_start_token_id = None
    model.config.bos_token_id = None
    inputs = {k: v for k, v in seq2seq_batch(None).items() if k != "decoder_input_ids"}
    with pytest.raises(ValueError, match="without decoder_start_token_id or bos_token_id.*pass decoder_input_ids"):
        ats.capture_attention(model, inputs)
    with pytest.raises(ValueError, match="without decoder_start_token_id or bos_token_id"):
        ats.attribute(model, inputs, method="saliency")
    # Given decoder inputs, nothing is missing.
    assert ats.capture_attention(model, seq2seq_batch(None)).decoder is not None


@pytest.mark.parametrize("baselines", ["pad", torch.zeros(1, 8, 32)])
def test_baselines_other_than_zero_are_refused(baselines):
    given = "'pad'" if isinstance(baselines, str) else r"a tensor of shape \(1, 8, 32\)"
    with pytest.raises(ValueError, match=rf"baselines={given} is not supported for encoder-decoder models .*'zero'"):
        ats.attribute(build("bart_lm"), seq2seq_batch(None), method="integrated_gradients", baselines=baselines)


def test_labels_in_the_inputs_are_refused_with_what_to_pass_instead():
    inputs = {**seq2seq_batch(None), "labels": torch.tensor([[5, 6, 1]])}
    with pytest.raises(ValueError, match="inputs hold labels: pass the target text as target="):
        ats.attribute(build("marian"), inputs, method="saliency")


@pytest.mark.parametrize("method", ["occlusion", "kernel_shap", "attention_x_gradient"])
def test_methods_without_encoder_decoder_support_say_which_have_it(method):
    with pytest.raises(ValueError, match=rf"method='{method}' does not support encoder-decoder models "
                                         r"\(T5ForConditionalGeneration\) yet; the gradient methods do \(saliency"):
        ats.attribute(build("t5"), seq2seq_batch(None), method=method)


def test_an_explicit_layer_is_refused():
    model = build("bart_lm")
    with pytest.raises(ValueError, match=r"layer= is not supported for encoder-decoder models \(BartForConditional"):
        ats.attribute(model, seq2seq_batch(None), method="saliency", layer=model.model.encoder.embed_tokens)
