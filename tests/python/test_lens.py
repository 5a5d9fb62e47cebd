"""The logit lens: the streaming vocabulary projection op, every family against the model's own logits and a
plain-torch reference (HF hidden states, the final norm module, a full matmul, softmax), bad inputs."""

from __future__ import annotations

import pytest
import torch

import attnscope as ats
from attnscope.ops import vocab_projection
from attnscope.adapters.unembedding import find_readout
from attnscope.attribution.targets import Contrast, TokenId

from lens_models import DECODERS, FAMILIES, VOCAB, batch, build


# --- the op ---------------------------------------------------------------------------------------------------
def _op_inputs(dtype, v=53, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(3, 7, 16, generator=g, dtype=dtype) * 2
    weight = torch.randn(v, 16, generator=g, dtype=dtype)
    bias = torch.randn(v, generator=g, dtype=dtype)
    reference = torch.randn(7, 16, generator=g, dtype=dtype) * 2
    targets = torch.randint(0, v, (7, 2), generator=g)
    return hidden, weight, bias, reference, targets


def _reference(hidden, weight, bias, reference, targets, k, softcap):
    def logits(x):
        z = x.double() @ weight.double().t() + bias.double()
        return torch.tanh(z / softcap) * softcap if softcap else z

    z = logits(hidden)
    lp = torch.log_softmax(z, -1)
    lq = torch.log_softmax(logits(reference), -1)
    top = lp.topk(k, -1)
    idx = targets.unsqueeze(0).expand(hidden.shape[0], -1, -1)
    tz = z.gather(-1, idx)
    return dict(topk_logprobs=top.values, topk_ids=top.indices, logsumexp=torch.logsumexp(z, -1),
                entropy=-(lp.exp() * lp).sum(-1), kl=(lq.exp() * (lq - lp)).sum(-1),
                target_logprobs=lp.gather(-1, idx), target_ranks=(z.unsqueeze(-2) > tz.unsqueeze(-1)).sum(-1))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("softcap", [0.0, 4.0])
def test_op_matches_full_softmax(dtype, tol, softcap):
    h, w, b, r, t = _op_inputs(dtype)
    out = vocab_projection(h, w, b, reference=r, targets=t, k=6, softcap=softcap, vocab_chunk=10, row_block=3)
    ref = _reference(h, w, b, r, t, 6, softcap)
    assert torch.equal(out.topk_ids, ref["topk_ids"])
    assert torch.equal(out.target_ranks, ref["target_ranks"])
    for name in ("topk_logprobs", "logsumexp", "entropy", "kl", "target_logprobs"):
        torch.testing.assert_close(getattr(out, name).double(), ref[name], rtol=tol, atol=tol, msg=name)


def test_op_is_chunk_and_block_size_invariant():
    """Chunking changes nothing but rounding: identical ids and ranks; in float64 every value agrees to 1e-12, in
    float32 every chunking stays within the float32 accuracy bound of test_op_matches_full_softmax (a GEMM's
    summation order depends on the tile width, e.g. a one-column chunk is a GEMV, so bitwise equality is not
    promised in float32)."""
    for dtype in (torch.float64, torch.float32):
        h, w, b, r, t = _op_inputs(dtype, v=301)
        base = vocab_projection(h, w, b, reference=r, targets=t, k=5, vocab_chunk=301, row_block=7)
        exact = _reference(h, w, b, r, t, 5, 0.0)
        for chunk, block in [(3, 0), (7, 2), (64, 1), (300, 5), (0, 0)]:  # (300, 5) ends in a 1-wide chunk
            out = vocab_projection(h, w, b, reference=r, targets=t, k=5, vocab_chunk=chunk, row_block=block)
            assert torch.equal(out.topk_ids, base.topk_ids), (dtype, chunk, block)
            assert torch.equal(out.target_ranks, base.target_ranks), (dtype, chunk, block)
            for name in ("topk_logprobs", "logsumexp", "entropy", "kl", "target_logprobs"):
                got, msg = getattr(out, name), f"{name} at chunk {chunk}, block {block}, {dtype}"
                if dtype == torch.float64:
                    torch.testing.assert_close(got, getattr(base, name), rtol=1e-12, atol=1e-12, msg=msg)
                else:
                    torch.testing.assert_close(got.double(), exact[name], rtol=2e-5, atol=2e-5, msg=msg)


def test_op_ties_keep_the_smaller_id_first():
    w = torch.zeros(9, 4)
    w[[2, 5, 7], 0] = 1.0
    out = vocab_projection(torch.ones(1, 1, 4), w, k=3, vocab_chunk=2)
    assert out.topk_ids.tolist() == [[[2, 5, 7]]]
    out = vocab_projection(torch.ones(1, 1, 4), w, k=4, vocab_chunk=4)
    assert out.topk_ids.tolist() == [[[2, 5, 7, 0]]]


def test_op_half_inputs_compute_in_float32():
    h, w, b, r, t = _op_inputs(torch.float32)
    out = vocab_projection(h.bfloat16(), w.bfloat16(), b.bfloat16(), reference=r.bfloat16(), targets=t, k=3)
    ref = _reference(h.bfloat16().float(), w.bfloat16().float(), b.bfloat16().float(), r.bfloat16().float(), t, 3, 0.0)
    assert out.entropy.dtype == torch.float32
    torch.testing.assert_close(out.entropy.double(), ref["entropy"], rtol=1e-5, atol=1e-5)


def test_op_opcheck():
    h, w, b, r, t = _op_inputs(torch.float32, v=23)
    torch.library.opcheck(torch.ops.attnscope.vocab_projection.default, (h, w, b, r, t, 4, 0.0, 16, 2))
    torch.library.opcheck(torch.ops.attnscope.vocab_projection.default, (h, w, None, None, t[:, :0], 1, 2.0, 0, 0))


@pytest.mark.parametrize("kwargs,match", [
    (dict(k=0), "k must be in 1..53"),
    (dict(k=54), "k must be in 1..53"),
    (dict(softcap=-1.0), "softcap must be >= 0"),
    (dict(targets=torch.full((7, 1), 53)), "target token ids must be in 0..52"),
    (dict(reference=torch.zeros(6, 16)), "reference must be"),
])
def test_op_bad_inputs(kwargs, match):
    h, w, b, r, t = _op_inputs(torch.float32)
    args = dict(reference=r, targets=t, k=3) | kwargs
    with pytest.raises(ValueError, match=match):
        vocab_projection(h, w, b, **args)


# --- the lens on every family ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models():
    return {kind: build(kind) for kind in FAMILIES}


def _model_logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits.double()


def _hf_layer_states(model, inputs):
    """HF's own hidden states after every block (output_hidden_states; the last one before the final norm)."""
    readout = find_readout(model)
    with torch.no_grad():
        hs = model(**inputs, output_hidden_states=True).hidden_states
    return [hs[i + 1] for i in range(len(readout.blocks) - 1)]


@pytest.mark.parametrize("kind", FAMILIES)
def test_last_layer_is_the_models_own_distribution(models, kind):
    model, inputs = models[kind], batch()
    res = ats.logit_lens(model, inputs, top_k=7)
    probs = torch.softmax(_model_logits(model, inputs), -1)  # [batch, seq, vocab]
    top = probs.topk(7, -1)
    mask = inputs["attention_mask"].bool()
    assert torch.equal(res.topk_ids[-1][mask], top.indices[mask])
    torch.testing.assert_close(res.topk_probs[-1][mask].double(), top.values[mask], rtol=0, atol=1e-5)
    assert float(res.kl[-1][mask].abs().max()) < 1e-5


@pytest.mark.parametrize("kind", FAMILIES)
def test_every_layer_matches_plain_torch(models, kind):
    model, inputs = models[kind], batch()
    res = ats.logit_lens(model, inputs, top_k=4, target=11)
    readout = find_readout(model)
    final = torch.log_softmax(_model_logits(model, inputs), -1)
    mask = inputs["attention_mask"].bool()
    for layer, h in enumerate(_hf_layer_states(model, inputs)):
        with torch.no_grad():
            z = readout.norm(h).double() @ readout.weight.double().t()
            if readout.bias is not None:
                z = z + readout.bias.double()
            if readout.softcap:
                z = torch.tanh(z / readout.softcap) * readout.softcap
        lp = torch.log_softmax(z, -1)
        top = lp.topk(4, -1)
        assert torch.equal(res.topk_ids[layer][mask], top.indices[mask]), layer
        torch.testing.assert_close(res.topk_probs[layer][mask].double(), top.values.exp()[mask], rtol=0, atol=1e-5)
        torch.testing.assert_close(res.target_probs[layer, ..., 0][mask].double(), lp[..., 11].exp()[mask],
                                   rtol=0, atol=1e-5)
        rank = (z > z[..., 11:12]).sum(-1)
        assert torch.equal(res.target_ranks[layer, ..., 0][mask], rank[mask])
        ent = -(lp.exp() * lp).sum(-1)
        torch.testing.assert_close(res.entropy[layer][mask].double(), ent[mask], rtol=1e-5, atol=1e-5)
        kl = (final.exp() * (final - lp)).sum(-1)
        torch.testing.assert_close(res.kl[layer][mask].double(), kl[mask], rtol=1e-5, atol=1e-5)


def test_lens_is_vocab_chunk_invariant(models):
    model, inputs = models["gpt2"], batch()
    a = ats.logit_lens(model, inputs, top_k=5, vocab_chunk=VOCAB)
    for chunk in (1, 10, 64):
        b = ats.logit_lens(model, inputs, top_k=5, vocab_chunk=chunk)
        assert torch.equal(a.topk_ids, b.topk_ids)
        torch.testing.assert_close(a.topk_probs, b.topk_probs, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(a.kl, b.kl, rtol=1e-5, atol=1e-6)


def test_layers_positions_and_contrast(models):
    model, inputs = models["qwen2"], batch(padding=False)
    full = ats.logit_lens(model, inputs, top_k=3, target=Contrast(5, 9))
    part = ats.logit_lens(model, inputs, top_k=3, target=Contrast(5, 9), layers=[-1, 0], positions=[2, -1])
    assert part.layers == [2, 0] and part.positions == [2, 8]
    assert torch.equal(part.topk_ids, full.topk_ids[[2, 0]][:, :, [2, 8]])
    torch.testing.assert_close(part.logit_diff, full.logit_diff[[2, 0]][:, :, [2, 8]])
    logits = _model_logits(model, inputs)
    torch.testing.assert_close(full.logit_diff[-1, 0].double(), logits[0, :, 5] - logits[0, :, 9], rtol=0, atol=1e-5)
    assert full.target_ids.tolist() == [[5, 9]]


def test_default_target_is_the_next_token_at_the_last_position(models):
    model, inputs = models["mistral"], batch()
    res = ats.logit_lens(model, inputs)
    logits = _model_logits(model, inputs)
    assert res.target_ids[:, 0].tolist() == logits[:, -1].argmax(-1).tolist()
    assert res.target_ranks[-1, :, -1, 0].tolist() == [0, 0]


# --- results --------------------------------------------------------------------------------------------------
def test_result_pandas_save_load_plot(models, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    model, inputs = models["llama"], batch()
    res = ats.logit_lens(model, inputs, top_k=3, target=TokenId([4, 6]))
    df = res.to_pandas()
    assert len(df) == 3 * (9 + 6)  # padding positions dropped
    assert set(df.columns) >= {"layer", "position", "top1", "top1_prob", "target_prob", "target_rank", "kl_to_final"}
    row = df[(df.example == 1) & (df.layer == 2) & (df.position == 8)].iloc[0]
    assert row.target == "6" and abs(row.target_prob - float(res.target_probs[2, 1, 8, 0])) < 1e-7
    back = ats.load(res.save(tmp_path / "lens"))
    assert isinstance(back, ats.LensResult) and torch.equal(back.topk_ids, res.topk_ids) and back.vocab == res.vocab
    assert res.top_tokens(2, 8, example=1)[0] == (res.token(res.topk_ids[2, 1, 8, 0]), float(res.topk_probs[2, 1, 8, 0]))
    fig = res.plot(example=1)
    assert len(fig.axes) == 3
    html = res.view().html
    assert "<script" in html and "http" not in html


# --- bad inputs -----------------------------------------------------------------------------------------------
def test_model_without_lm_head_is_refused():
    import transformers as tf

    base = tf.LlamaModel(tf.LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=16, num_hidden_layers=1,
                                        num_attention_heads=2))
    with pytest.raises(ValueError, match="no language-model head.*AutoModelForCausalLM"):
        ats.logit_lens(base, batch())


def test_bad_arguments(models):
    model, inputs = models["llama"], batch()
    with pytest.raises(ValueError, match=r"layer 3 out of range: the model has 3 layers \(0..2"):
        ats.logit_lens(model, inputs, layers=[0, 3])
    with pytest.raises(ValueError, match="layer -4 out of range"):
        ats.logit_lens(model, inputs, layers=-4)
    with pytest.raises(ValueError, match="position 9 out of range"):
        ats.logit_lens(model, inputs, positions=[9])
    with pytest.raises(ValueError, match=r"target token id 97 out of range: the model has 97 tokens"):
        ats.logit_lens(model, inputs, target=97)
    with pytest.raises(ValueError, match="contrast token 200 out of range"):
        ats.logit_lens(model, inputs, target=Contrast(1, 200))
    for k in (0, VOCAB + 1, 2.5):
        with pytest.raises(ValueError, match=r"top_k must be an integer in 1..97"):
            ats.logit_lens(model, inputs, top_k=k)
    with pytest.raises(ValueError, match="needs tokenizer="):
        ats.logit_lens(model, "hello")
    with pytest.raises(ValueError, match="is a string; pass tokenizer="):
        ats.logit_lens(model, inputs, target="cat")
    with pytest.raises(ValueError, match="not a token"):
        ats.logit_lens(model, inputs, target=lambda out: out.logits[:, -1, 0])


@pytest.mark.parametrize("kind", DECODERS)
def test_hooks_are_removed(models, kind):
    model = models[kind]
    before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    with pytest.raises(ValueError):
        ats.logit_lens(model, batch(), target=10_000)
    ats.logit_lens(model, batch())
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == before


def test_device_generic_path_matches_the_kernel():
    """The torch path that other devices take (run here on the CPU) computes what the C++ kernel does."""
    from attnscope.ops.vocab import vocab_projection_generic

    for softcap in (0.0, 3.0):
        h, w, b, r, t = _op_inputs(torch.float64, v=101)
        want = vocab_projection(h, w, b, reference=r, targets=t, k=4, softcap=softcap, vocab_chunk=16)
        got = vocab_projection_generic(h, w, b, r, t, 4, softcap, 16, 0)
        for name, a, g in zip(want._fields, want, got):
            if a.is_floating_point():
                torch.testing.assert_close(g, a, rtol=1e-10, atol=1e-10, msg=name)
            else:
                assert torch.equal(g, a), name
    with pytest.raises(RuntimeError, match="k must be in 1..101"):
        vocab_projection_generic(h, w, b, r, t, 0, 0.0, 16, 0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_lens_on_cuda_matches_cpu(models):
    model, inputs = models["llama"], batch()
    cpu = ats.logit_lens(model, inputs, top_k=3)
    gpu = ats.logit_lens(model.cuda(), {k: v.cuda() for k, v in inputs.items()}, top_k=3)
    model.cpu()
    assert torch.equal(cpu.topk_ids, gpu.topk_ids)
    torch.testing.assert_close(cpu.topk_probs, gpu.topk_probs, rtol=1e-4, atol=1e-5)
