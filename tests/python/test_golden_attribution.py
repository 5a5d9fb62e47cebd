"""Every method's scores equal the golden file recorded before the attribution layer was restructured (issue 13):
bit-identical or within 1e-6 (absolute and relative), on the induction organism, MiniLM, a tiny GPT-2 and BERT."""

from __future__ import annotations

import pytest
import torch
from golden_attribution import ATTRIBUTE_CASES, GENERATION_CASES, GOLDEN, run_attribute, run_generation
from safetensors.torch import load_file


@pytest.fixture(scope="module")
def golden():
    return load_file(str(GOLDEN))


@pytest.fixture(scope="module")
def models():
    return {}


def _compare(golden, name, got):
    keys = {k.split("/", 1)[1] for k in golden if k.startswith(name + "/")}
    assert keys, f"no golden values for {name}"
    assert set(got) == keys, (name, sorted(got), sorted(keys))
    for key, value in got.items():
        want = golden[f"{name}/{key}"]
        assert value.shape == want.shape and value.dtype == want.dtype, (name, key, value.shape, want.shape)
        torch.testing.assert_close(value.detach().cpu(), want, rtol=1e-6, atol=1e-6, equal_nan=True,
                                   msg=lambda m: f"{name}/{key}: {m}")


@pytest.mark.parametrize("name,model,kwargs", ATTRIBUTE_CASES, ids=[c[0] for c in ATTRIBUTE_CASES])
def test_attribute_scores_unchanged(golden, models, name, model, kwargs):
    _compare(golden, name, run_attribute(model, kwargs, models))


@pytest.mark.parametrize("name,kwargs", GENERATION_CASES, ids=[c[0] for c in GENERATION_CASES])
def test_generation_scores_unchanged(golden, models, name, kwargs):
    _compare(golden, name, run_generation(kwargs, models))
