"""Every result type survives .save -> attnscope.load exactly (no pickle)."""

from __future__ import annotations

import json

import pytest
import torch

import attnscope as ats

from tiny_models import batch, build


def assert_same(a, b):
    assert type(a) is type(b)
    for name, value in vars(a).items():
        if name.startswith("_") or name == "outputs":
            continue
        other = getattr(b, name)
        if isinstance(value, torch.Tensor):
            assert other.dtype == value.dtype and torch.equal(other, value), name
        elif hasattr(value, "__dataclass_fields__"):
            assert_same(value, other)
        else:
            assert other == value, name


def test_attention_result_round_trip(tmp_path):
    res = ats.capture_attention(build("qwen2"), batch("qwen2", "left"), topk=2, entropy=True, reduce="mean")
    res.tokens = [["a", "<b>"] * 5, ["c"] * 10]
    res.save(tmp_path / "res")
    assert not list((tmp_path / "res").glob("*.pkl"))
    assert_same(res, ats.load(tmp_path / "res"))


def test_encoder_decoder_round_trip(tmp_path):
    inputs = batch("bart", None)
    inputs["decoder_input_ids"] = inputs["input_ids"][:, :4]
    res = ats.capture_attention(build("bart"), inputs)
    ats.load(res.save(tmp_path / "bart"))
    assert_same(res, ats.load(tmp_path / "bart"))


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved attnscope result"):
        ats.load(tmp_path)
    (tmp_path / "result.json").write_text(json.dumps({"format": "other/9"}))
    with pytest.raises(ValueError, match="has format 'other/9'"):
        ats.load(tmp_path)


def test_attribution_and_head_stats_round_trip(tmp_path):
    from attnscope.organisms import load as load_organism

    model, tok = load_organism("induction")
    enc = tok(["t1 t2 t3 t1 t2", "t4 t5"], padding=True, return_tensors="pt")
    attribution = ats.attribute(model, enc, method="integrated_gradients", n_steps=8, tokenizer=tok)
    assert_same(attribution, ats.load(attribution.save(tmp_path / "attr")))
    stats = ats.head_stats(model, tok, ["t1 t2 t3 t1 t2 t3", "t4 t5 t4"], progress=False)
    back = ats.load(stats.save(tmp_path / "stats"))
    assert type(back) is type(stats) and back.layers == stats.layers and back.counts == stats.counts
    assert all(torch.equal(back.scores[k], stats.scores[k]) for k in stats.scores)
