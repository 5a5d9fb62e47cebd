"""head_stats against the same statistics computed row by row from eager ``output_attentions``, one text at a time."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import attnscope as ats
from attnscope.analysis import head_stats, repeated_sequences
from attnscope.analysis.head_stats import STAT_NAMES, stats_from_weights
from attnscope.results import HeadStats

import tiny_models

SEG = 4


def sequences() -> list[torch.Tensor]:
    """Texts of different lengths as id lists: repeated segments (induction and duplicate rows) and random ones."""
    g = torch.Generator().manual_seed(3)
    out = []
    for prefix in (0, 2, 5):
        seg = torch.randperm(tiny_models.VOCAB - 3, generator=g)[:SEG] + 3
        head = torch.randint(3, tiny_models.VOCAB, (prefix,), generator=g)
        out.append(torch.cat([torch.tensor([1]), head, seg, seg]))
    for length in (7, 12, 3):
        out.append(torch.randint(3, 20, (length,), generator=g))  # small id range: duplicate tokens
    return out


def as_padded(seqs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, s in enumerate(seqs):
        ids[r, :len(s)], mask[r, :len(s)] = s, 1
    return {"input_ids": ids, "attention_mask": mask}


def reference(model, seqs: list[torch.Tensor], period: int) -> dict[str, torch.Tensor]:
    """Plain loops over each text's eager attention (no padding anywhere): name -> [layer, head] means."""
    model.set_attn_implementation("eager")
    totals: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {n: 0 for n in STAT_NAMES}
    with torch.no_grad():
        for ids in seqs:
            att = torch.stack(model(input_ids=ids[None], output_attentions=True).attentions)[:, 0].double()
            n_layers, heads, L, _ = att.shape
            rows: dict[str, list] = {n: [] for n in STAT_NAMES}
            for i in range(L):
                p = att[:, :, i]  # [layer, head, key]
                if i >= 1:
                    rows["prev_token"].append(p[..., i - 1])
                if period and i - period >= 0 and ids[i] == ids[i - period]:
                    rows["induction"].append(p[..., i - period + 1])
                dups = [j for j in range(i) if ids[j] == ids[i]]
                if dups:
                    rows["duplicate_token"].append(p[..., dups].sum(-1))
                rows["entropy"].append(-(p * p.clamp_min(1e-300).log()).sum(-1))
                rows["first_token"].append(p[..., 0])
                rows["distance"].append((p * torch.tensor([abs(i - j) for j in range(L)], dtype=p.dtype)).sum(-1))
            for n, r in rows.items():
                if r:
                    totals[n] = totals.get(n, 0) + torch.stack(r).sum(0)
                    counts[n] += len(r)
    return {n: totals[n] / counts[n] for n in totals}


@pytest.mark.parametrize("kind", ["llama", "gpt2", "qwen2", "mistral", "gemma2", "bert"])
def test_matches_eager_on_padded_batches(kind):
    model = tiny_models.build(kind)
    seqs = sequences()
    before = model.config._attn_implementation
    hs = head_stats(model, None, as_padded(seqs), batch_size=4, segment_len=SEG, progress=False)
    assert model.config._attn_implementation == before  # restored
    ref = reference(model, seqs, SEG)
    assert hs.names == list(STAT_NAMES)
    assert hs.n_texts == len(seqs) and hs.n_tokens == sum(len(s) for s in seqs)
    assert hs.counts["induction"] >= 3 * SEG and hs.counts["entropy"] == hs.n_tokens
    for name in STAT_NAMES:
        assert hs[name].shape == (2, 4)
        torch.testing.assert_close(hs[name], ref[name], atol=1e-5, rtol=0, msg=name)


def test_stats_from_weights_matches_reference():
    model = tiny_models.build("llama", attn="eager")
    seqs = sequences()
    batch = as_padded(seqs)
    with torch.no_grad():
        att = model(**batch, output_attentions=True).attentions
    ref = reference(model, seqs, SEG)
    for layer, w in enumerate(att):
        sums, counts = stats_from_weights(w, batch["input_ids"], batch["attention_mask"].bool(), SEG)
        means = sums.sum(0) / counts.sum(0)
        for c, name in enumerate(STAT_NAMES):
            torch.testing.assert_close(means[:, c], ref[name][layer], atol=1e-5, rtol=0, msg=name)


def test_op_opcheck_and_chunking():
    q, k = torch.randn(2, 4, 9, 8), torch.randn(2, 2, 9, 8)
    ids = torch.randint(0, 4, (2, 9))
    valid = torch.ones(2, 9, dtype=torch.bool)
    valid[1, 6:] = False
    args = (q, k, valid[:, None, None, :], 0.3, True, 0, 0.0, None, 0, ids, valid, 3)
    torch.library.opcheck(torch.ops.attnscope.attention_head_stats.default, args)
    a = ats.ops.attention_head_stats(q, k, valid[:, None, None, :], is_causal=True, input_ids=ids, valid=valid,
                                     induction_period=3)
    b = ats.ops.attention_head_stats(q, k, valid[:, None, None, :], is_causal=True, input_ids=ids, valid=valid,
                                     induction_period=3, query_chunk=2)
    torch.testing.assert_close(a.sums, b.sums, atol=1e-12, rtol=0)
    assert torch.equal(a.counts, b.counts) and a.counts[1, 3] == 6


def test_op_bad_inputs_name_values():
    q, k = torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4)
    with pytest.raises(ValueError, match="induction_period must be 0 .* got 1"):
        ats.ops.attention_head_stats(q, k, input_ids=torch.zeros(1, 5, dtype=torch.long), induction_period=1)
    with pytest.raises(ValueError, match=r"input_ids must be \[batch, k_len\] = \[1, 5\], got shape \[1, 4\]"):
        ats.ops.attention_head_stats(q, k, input_ids=torch.zeros(1, 4, dtype=torch.long))


def test_repeated_sequences():
    model = tiny_models.build("llama")
    ids = repeated_sequences(50, n=5, segment_len=7, seed=1)
    assert ids.shape == (5, 14) and torch.equal(ids[:, :7], ids[:, 7:])
    assert all(len(set(row[:7].tolist())) == 7 for row in ids) and int(ids.max()) < 50
    assert torch.equal(ids, repeated_sequences(50, n=5, segment_len=7, seed=1))
    hs = head_stats(model, None, induction=True, segment_len=5, n_sequences=6, progress=False)
    assert hs.segment_len == 5 and hs.counts["induction"] == 6 * 5  # no bos for a config vocab size
    with pytest.raises(ValueError, match="segment_len=60 needs that many distinct tokens"):
        repeated_sequences(50, n=1, segment_len=60)


def test_bad_inputs():
    model = tiny_models.build("llama")
    with pytest.raises(ValueError, match="texts is empty"):
        head_stats(model, None, [], progress=False)
    with pytest.raises(ValueError, match="needs the model's tokenizer"):
        head_stats(model, None, ["a b"], progress=False)
    with pytest.raises(ValueError, match="texts is None"):
        head_stats(model, None, progress=False)
    with pytest.raises(ValueError, match="unknown statistic 'prev'"):
        head_stats(model, None, torch.ones(1, 4, dtype=torch.long), stats=["prev"], progress=False)
    with pytest.raises(ValueError, match="needs the repeated segment's length"):
        head_stats(model, None, torch.ones(1, 4, dtype=torch.long), stats="induction", progress=False)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        head_stats(model, None, torch.ones(1, 4, dtype=torch.long), batch_size=0, progress=False)


def test_too_long_texts_are_truncated_with_a_warning():
    model = tiny_models.build("llama")  # max_position_embeddings = 64
    long = torch.randint(3, tiny_models.VOCAB, (2, 80))
    with pytest.warns(UserWarning, match="2 of 2 texts are longer than the model's maximum of 64 tokens"):
        hs = head_stats(model, None, long, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cut = head_stats(model, None, long[:, :64], progress=False)
    assert hs.truncated == 2 and hs.n_tokens == 128
    torch.testing.assert_close(hs["entropy"], cut["entropy"], atol=0, rtol=0)


def test_result_methods_and_progress(capsys):
    model = tiny_models.build("gpt2")
    capsys.readouterr()  # building may log transformers' config warnings
    hs = head_stats(model, None, torch.randint(3, 90, (3, 10)), batch_size=2, progress=False)
    assert capsys.readouterr().err == ""
    assert isinstance(hs, HeadStats) and "induction" not in hs.names
    df = hs.to_pandas()
    assert list(df.columns) == ["layer", "head", *hs.names] and len(df) == 8
    top = hs.top("prev_token", 3)
    assert len(top) == 3 and top[0][2] >= top[1][2] >= top[2][2]
    assert top[0][2] == pytest.approx(float(hs["prev_token"].max()))
    with pytest.raises(KeyError, match="unknown statistic 'induction'"):
        hs.top("induction")
    head_stats(model, None, torch.randint(3, 90, (3, 10)), batch_size=2, progress=True)
    assert "head_stats" in capsys.readouterr().err
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    fig = hs.plot(["prev_token", "entropy"])
    assert len(fig.axes) >= 2 and "prev_token" in repr(hs)


def test_nothing_installed_survives_an_error():
    from transformers.modeling_utils import AttentionInterface

    model = tiny_models.build("llama")
    before = set(AttentionInterface._global_mapping)

    def fail(module, args, output):
        raise RuntimeError("MLP failed on purpose")

    handle = model.model.layers[1].mlp.register_forward_hook(fail)  # after layer 0's attention ran under capture
    try:
        with pytest.raises(RuntimeError, match="on purpose"):
            head_stats(model, None, torch.ones(1, 5, dtype=torch.long), progress=False)
    finally:
        handle.remove()
    with pytest.raises(ValueError, match="token id 10000, outside the model's vocabulary of 97 tokens"):
        head_stats(model, None, torch.full((1, 5), 10_000), progress=False)  # refused before the forward
    assert set(AttentionInterface._global_mapping) == before
    assert model.config._attn_implementation == "sdpa"
    assert not math.isnan(float(head_stats(model, None, torch.ones(1, 5, dtype=torch.long),
                                           progress=False)["entropy"][0, 0]))
