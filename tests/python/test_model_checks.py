"""Models attnscope must not explain silently wrong (issue #22): training mode, meta weights, modules without a
config, attention arguments the capture does not implement, booleans for index lists, rollout without weights."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

import attnscope as ats
from attnscope.adapters import find_attention_modules

from tiny_models import FAMILIES, SEQ2SEQ, batch, build, seq2seq_batch

IDS = torch.tensor([[5, 6, 7, 8, 9, 10]])


def _gpt2(attn_pdrop: float):
    import transformers as tf

    torch.manual_seed(0)
    cfg = tf.GPT2Config(vocab_size=97, n_embd=32, n_layer=2, n_head=4, n_positions=64, attn_pdrop=attn_pdrop,
                        resid_pdrop=0.2, embd_pdrop=0.2)
    return tf.GPT2LMHeadModel(cfg).train()


def test_training_mode_without_attention_dropout_equals_the_models_own_forward():
    model = _gpt2(0.0)  # hidden dropout on, attention dropout off: the training forward is random but reproducible
    torch.manual_seed(3)
    own = model(IDS).logits
    with warnings.catch_warnings(record=True) as seen, ats.capture(model) as cap:
        warnings.simplefilter("always")
        torch.manual_seed(3)
        captured = model(IDS).logits
    assert not [w for w in seen if "dropout" in str(w.message)]
    torch.testing.assert_close(captured, own, rtol=0, atol=1e-6)
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    torch.manual_seed(3)
    oracle = torch.stack(eager(IDS, output_attentions=True).attentions)
    torch.testing.assert_close(cap.result.weights, oracle, rtol=0, atol=1e-6)
    assert model.training


def test_training_mode_with_attention_dropout_warns_naming_it_and_keeps_the_forward():
    import transformers as tf

    torch.manual_seed(0)
    model = tf.LlamaForCausalLM(tf.LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=48,
                                               num_hidden_layers=2, num_attention_heads=4, attention_dropout=0.5))
    model.train()
    torch.manual_seed(7)
    own = model(IDS).logits
    with pytest.warns(RuntimeWarning, match=r"LlamaAttention is in training mode with attention dropout 0\.5.*"
                                            r"before dropout.*model\.eval\(\)"):
        with ats.capture(model) as cap:
            torch.manual_seed(7)
            captured = model(IDS).logits
    torch.testing.assert_close(captured, own, rtol=0, atol=0)  # the dropout the model drew, untouched
    before_dropout = ats.capture_attention(model.eval(), IDS).weights  # eval: the same softmax, no dropout
    # layer 0 sees the same input in both; later layers see the dropped-out outputs of the ones before
    torch.testing.assert_close(cap.result.weights[0], before_dropout[0], rtol=0, atol=1e-6)
    model.train()
    with pytest.raises(ValueError, match=r"attention dropout 0\.5: grad=True .*model\.eval\(\)"):
        ats.capture_attention(model, IDS, grad=True)


@pytest.mark.parametrize("call", ["capture_attention", "capture", "attribute", "logit_lens", "capture_activations"])
def test_a_model_on_the_meta_device_is_refused(call):
    with torch.device("meta"):
        model = build("llama")
    run = {
        "capture_attention": lambda: ats.capture_attention(model, IDS),
        "capture": lambda: ats.capture(model),
        "attribute": lambda: ats.attribute(model, IDS, method="saliency"),
        "logit_lens": lambda: ats.logit_lens(model, IDS),
        "capture_activations": lambda: ats.capture_activations(model, IDS),
    }[call]
    with pytest.raises(ValueError, match=r"LlamaForCausalLM's weights are on the meta device"):
        run()


class _NoConfigAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.proj = nn.Linear(4, 4)

    def forward(self, input_ids, attention_mask=None):
        return self.proj(self.emb(input_ids))


@pytest.mark.parametrize("call", ["capture_attention", "capture", "head_stats"])
def test_a_module_without_a_config_is_refused(call):
    model = _NoConfigAttention()
    run = {
        "capture_attention": lambda: ats.capture_attention(model, torch.tensor([[1, 2, 3]])),
        "capture": lambda: ats.capture(model),
        "head_stats": lambda: ats.head_stats(model, None, torch.tensor([[1, 2, 3]])),
    }[call]
    with pytest.raises(TypeError, match=r"_NoConfigAttention is not a transformer attnscope can capture: it has no Hugging "
                                        r"Face config .*not a submodule"):
        run()


@pytest.mark.parametrize("kind", FAMILIES)
def test_an_attention_argument_the_capture_does_not_implement_is_refused_in_every_family(kind):
    """The general rule: whatever a family's attention module passes to its attention function is honoured or
    refused by name, never dropped (T5's position_bias was dropped once)."""
    model = build(kind)
    inputs = seq2seq_batch(None) if kind in SEQ2SEQ else batch(kind, None)
    plain = model(**inputs)[0]
    handles = []

    def add_argument(module, args, kwargs):
        return args, {**kwargs, "head_bias": torch.zeros(1, 4, 1, 1)}

    for module in find_attention_modules(model):
        handles.append(module.register_forward_pre_hook(add_argument, with_kwargs=True))
    try:
        with pytest.raises(ValueError, match=r"Attention passes head_bias=Tensor\(1, 4, 1, 1\) to its attention "
                                             r"function, which attnscope's capture does not honour"):
            ats.capture_attention(model, inputs)
    finally:
        for h in handles:
            h.remove()
    torch.testing.assert_close(model(**inputs)[0], plain, rtol=0, atol=0)  # the model is as it was


@pytest.mark.parametrize("call, arg", [
    ("capture_attention", {"layers": True}), ("capture_attention", {"heads": True}),
    ("capture_attention", {"heads": False}), ("capture_attention", {"heads": [0, True]}),
    ("capture_attention", {"layers": "0"}), ("logit_lens", {"layers": True}), ("logit_lens", {"positions": False}),
    ("capture_activations", {"positions": True}), ("capture_activations", {"layers": False}),
])
def test_a_bool_where_a_list_of_indices_is_expected_is_refused(call, arg):
    model = build("gpt2")
    name = next(iter(arg))
    with pytest.raises(TypeError, match=rf"^{name} takes an int, a list of ints or None, got"):
        getattr(ats, call)(model, IDS, **arg)


@pytest.mark.parametrize("fn", ["rollout", "attention_flow"])
@pytest.mark.parametrize("kept", [{"topk": 2}, {"entropy": True}])
def test_rollout_of_a_result_captured_without_weights_says_how_to_keep_them(fn, kept):
    res = ats.capture_attention(build("gpt2"), IDS, **kept)
    assert res.weights is None
    with pytest.raises(ValueError, match=rf"{fn} needs the attention weights, but this AttentionResult was captured "
                                         r"without them .*reduce='mean'"):
        getattr(ats, fn)(res)


@pytest.mark.parametrize("call", ["attribute_dataset", "benchmark"])
def test_one_string_where_a_list_of_texts_is_expected_is_refused(call):
    from attribution_models import tiny_gpt2, word_tokenizer

    model, tok = tiny_gpt2(), word_tokenizer(bert_style=False)
    fn = getattr(ats, call)
    with pytest.raises(TypeError, match=r"texts must be a list of strings, got one string; pass \[text\]"):
        fn(model, tok, "the cat sat", progress=False)  # was one text per character
    with pytest.raises(TypeError, match=r"texts must be a list of strings, got True \(bool\)"):
        fn(model, tok, True, progress=False)


def test_a_bool_for_the_benchmarks_methods_is_refused():
    from attribution_models import tiny_gpt2, word_tokenizer

    with pytest.raises(TypeError, match=r"methods takes a name, a list of names or None, got True \(bool\)"):
        ats.benchmark(tiny_gpt2(), word_tokenizer(bert_style=False), ["the cat"], methods=True, progress=False)
