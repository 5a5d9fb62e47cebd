"""A clear error for every bad input to attnscope.attribution.attribute."""

from __future__ import annotations

import pytest
import torch
from attribution_models import tiny_bert, tiny_gpt2, word_tokenizer
from torch import nn

from attnscope.attribution import attribute
from attnscope.attribution import targets as T


@pytest.fixture(scope="module")
def bert():
    tok = word_tokenizer(True)
    return tiny_bert(), tok, tok(["the cat sat on the mat"], return_tensors="pt")


def test_unknown_method_lists_the_methods(bert):
    model, _, enc = bert
    with pytest.raises(ValueError, match="saliency, input_x_gradient, integrated_gradients, smoothgrad, gradient_shap"):
        attribute(model, enc, method="deeplift")


def test_unknown_integration_lists_the_rules(bert):
    model, _, enc = bert
    with pytest.raises(ValueError, match="gausslegendre.*adaptive"):
        attribute(model, enc, method="integrated_gradients", integration="simpson")


def test_class_target_out_of_range(bert):
    model, _, enc = bert
    with pytest.raises(ValueError, match=r"target class 7 out of range: the model has 3 classes \(0..2\)"):
        attribute(model, enc, method="saliency", target=7)


def test_token_target_out_of_range():
    tok = word_tokenizer(False)
    model = tiny_gpt2()
    with pytest.raises(ValueError, match="token id 1000 out of range"):
        attribute(model, tok(["the cat"], return_tensors="pt"), method="saliency", target=1000)


def test_baselines_of_the_wrong_shape(bert):
    model, _, enc = bert
    with pytest.raises(ValueError, match=r"baselines of shape \(3, 32\) do not fit"):
        attribute(model, enc, method="integrated_gradients", target=0, baselines=torch.zeros(3, 32))


@pytest.mark.parametrize("n_steps", [0, -3])
def test_n_steps_below_one(bert, n_steps):
    model, _, enc = bert
    with pytest.raises(ValueError, match=f"n_steps must be >= 1, got {n_steps}"):
        attribute(model, enc, method="integrated_gradients", target=0, n_steps=n_steps)


def test_continuation_target_without_tokenizer():
    tok = word_tokenizer(False)
    with pytest.raises(ValueError, match="needs tokenizer="):
        attribute(tiny_gpt2(), tok(["the cat"], return_tensors="pt"), method="saliency",
                  target=T.Continuation("sat on"))


def test_model_without_an_embedding_layer_asks_for_layer():
    class Opaque(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Parameter(torch.randn(10, 4))

        def forward(self, input_ids, attention_mask=None):
            return self.table[input_ids].sum(1)

    with pytest.raises(ValueError, match="pass layer="):
        attribute(Opaque(), torch.tensor([[1, 2, 3]]), method="saliency", target=0)


def test_inputs_without_input_ids(bert):
    model, _, _ = bert
    with pytest.raises(ValueError, match="no 'input_ids'"):
        attribute(model, {"attention_mask": torch.ones(1, 3)}, method="saliency")


def test_baselines_for_a_method_without_baselines(bert):
    model, _, enc = bert
    with pytest.raises(ValueError, match="takes no baselines"):
        attribute(model, enc, method="saliency", target=0, baselines="pad")


def test_gradient_arguments_are_refused_by_perturbation_methods(bert):
    model, _, enc = bert
    with pytest.raises(ValueError, match="method='occlusion' takes no n_steps="):
        attribute(model, enc, method="occlusion", n_steps=8)
