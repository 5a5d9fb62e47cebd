"""neuron_stats against a brute-force sort of every activation of the corpus; streaming and memory."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap

import pytest
import torch

import attnscope as ats
from attnscope import organisms
from attnscope.ops import empty_topk, topk_merge

K = 4
CONTEXT = 2


@pytest.fixture(scope="module")
def organism():
    return organisms.load("induction")


def corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    # few distinct tokens: many equal activations, so ties are exercised
    return [" ".join(f"t{rng.randrange(6)}" for _ in range(rng.randrange(2, 14))) for _ in range(n)]


def padded_batches(tok, texts, size):
    """The batches neuron_stats runs: each text's ids, right-padded with zeros, with their mask."""
    for start in range(0, len(texts), size):
        seqs = [tok(t)["input_ids"] for t in texts[start:start + size]]
        width = max(map(len, seqs))
        ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        yield start, ids, mask


def brute_force(model, tok, texts, size):
    """Every mlp_hidden activation of the corpus (from the same batches), per layer: [(text, acts [pos, neuron],
    ids)]; the sort is done by the tests."""
    per_layer = {0: [], 1: []}
    for start, ids, mask in padded_batches(tok, texts, size):
        acts = ats.capture_activations(model, {"input_ids": ids, "attention_mask": mask}, sites="mlp_hidden")
        for r in range(ids.shape[0]):
            n = int(mask[r].sum())
            for layer in (0, 1):
                per_layer[layer].append((start + r, acts.get("mlp_hidden")[layer, r, :n], ids[r, :n]))
    return per_layer


BATCH = 5


@pytest.fixture(scope="module")
def reference(organism):
    model, tok = organism
    texts = corpus(23)
    return texts, brute_force(model, tok, texts, BATCH)


def test_top_k_equals_brute_force_sort_with_ties_by_text_and_position(organism, reference):
    model, tok = organism
    texts, ref = reference
    ns = ats.neuron_stats(model, tok, texts, top_k=K, context=CONTEXT, batch_size=BATCH, progress=False)
    assert ns.top_values.shape == (2, 128, K) and ns.n_texts == len(texts)
    for li, layer in enumerate((0, 1)):
        entries = ref[layer]
        n_tokens = sum(a.shape[0] for _, a, _ in entries)
        assert ns.n_tokens == n_tokens
        all_acts = torch.cat([a for _, a, _ in entries])  # [tokens, neuron]
        torch.testing.assert_close(ns.mean[li], all_acts.double().mean(0), atol=1e-6, rtol=0)
        torch.testing.assert_close(ns.max[li], all_acts.amax(0))
        torch.testing.assert_close(ns.frequency[li], (all_acts > 0).double().mean(0))
        for neuron in range(0, 128, 7):
            flat = [(float(a[p, neuron]), t, p) for t, a, _ in entries for p in range(a.shape[0])]
            flat.sort(key=lambda x: (-x[0], x[1], x[2]))
            best = flat[:K]
            assert ns.top_values[li, neuron].tolist() == [b[0] for b in best]  # the same batches: exact
            assert ns.top_text[li, neuron].tolist() == [b[1] for b in best]
            assert ns.top_position[li, neuron].tolist() == [b[2] for b in best]
            # the context window: the neuron's activations and token ids around the top position
            for j, (_, t, p) in enumerate(best):
                acts, ids = entries[t][1][:, neuron], entries[t][2]
                for off in range(-CONTEXT, CONTEXT + 1):
                    q = p + off
                    inside = 0 <= q < acts.shape[0]
                    assert int(ns.context_ids[li, neuron, j, CONTEXT + off]) == (int(ids[q]) if inside else -1)
                    if inside:
                        assert float(ns.context_acts[li, neuron, j, CONTEXT + off]) == pytest.approx(float(acts[q]),
                                                                                                     abs=1e-6)


def test_independent_of_batch_size_and_text_order(organism, reference):
    model, tok = organism
    texts, _ = reference
    a = ats.neuron_stats(model, tok, texts, top_k=K, context=CONTEXT, batch_size=1, progress=False)
    b = ats.neuron_stats(model, tok, iter(texts), top_k=K, context=CONTEXT, batch_size=9, progress=False)
    order = list(reversed(range(len(texts))))
    c = ats.neuron_stats(model, tok, [texts[i] for i in order], top_k=K, context=CONTEXT, batch_size=4,
                         progress=False)
    # Batches of other shapes round differently by an ulp: equal activations (every text's <bos>) may then swap
    # places, so identities are compared where a value stands apart from its neighbours by more than 1e-5.
    v = a.top_values
    gap = torch.full_like(v, float("inf"))
    gap[..., 1:] = (v[..., :-1] - v[..., 1:])
    gap[..., :-1] = torch.minimum(gap[..., :-1], v[..., :-1] - v[..., 1:])
    apart = gap > 1e-5
    apart[..., -1] = False  # the last slot can tie with an entry just outside the list
    assert apart.float().mean() > 0.5  # most entries are compared
    mapped_c = torch.where(c.top_text >= 0, len(texts) - 1 - c.top_text, -1)  # reversed: text i is n-1-i
    for other, text in ((b, b.top_text), (c, mapped_c)):
        torch.testing.assert_close(a.top_values, other.top_values, atol=1e-6, rtol=0)
        torch.testing.assert_close(a.mean, other.mean, atol=1e-6, rtol=0)
        torch.testing.assert_close(a.max, other.max, atol=1e-6, rtol=0)
        assert torch.equal(a.frequency, other.frequency)
        assert torch.equal(text[apart], a.top_text[apart])
        assert torch.equal(other.top_position[apart], a.top_position[apart])
        torch.testing.assert_close(a.context_acts[apart], other.context_acts[apart], atol=1e-6, rtol=0)


def test_topk_merge_op_opcheck_and_python_brute_force():
    g = torch.Generator().manual_seed(3)
    v, k = empty_topk(6, 3)
    blocks = [torch.randint(0, 4, (5, 6), generator=g).float() for _ in range(3)]
    seen = []
    for i, blk in enumerate(blocks):
        keys = torch.arange(i * 5, i * 5 + 5)
        torch.library.opcheck(torch.ops.attnscope.topk_merge.default, (v, k, blk, keys))
        out = topk_merge(v, k, blk, keys)
        v, k = out.values, out.keys
        seen.append((blk, keys))
    allv = torch.cat([b for b, _ in seen])
    allk = torch.cat([kk for _, kk in seen])
    for u in range(6):
        ref = sorted(zip(allv[:, u].tolist(), allk.tolist()), key=lambda x: (-x[0], x[1]))[:3]
        assert list(zip(v[u].tolist(), k[u].tolist())) == ref
    with pytest.raises(ValueError, match="new_values has 5 units, the running lists have 6"):
        topk_merge(v, k, torch.zeros(2, 5), torch.arange(2))


def test_bad_inputs(organism):
    model, tok = organism
    with pytest.raises(ValueError, match="top_k must be an integer >= 1, got 0"):
        ats.neuron_stats(model, tok, ["t1"], top_k=0)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        ats.neuron_stats(model, tok, ["t1"], batch_size=0)
    with pytest.raises(ValueError, match=r"layer 5 out of range: model has 2 layers"):
        ats.neuron_stats(model, tok, ["t1"], layers=5)
    with pytest.raises(ValueError, match="texts is empty"):
        ats.neuron_stats(model, tok, [], progress=False)
    with pytest.raises(TypeError, match="got one string"):
        ats.neuron_stats(model, tok, "t1 t2")
    with pytest.raises(ValueError, match="unknown site 'mlp'"):
        ats.neuron_stats(model, tok, ["t1"], site="mlp")


def test_result_methods_and_persistence(organism, reference, tmp_path):
    model, tok = organism
    texts, _ = reference
    ns = ats.neuron_stats(model, tok, texts, top_k=K, context=CONTEXT, layers=[1], progress=False)
    assert ns.layers == [1]
    top = ns.top_neurons("t3", k=5)
    assert top and all(layer == 1 for layer, *_ in top)
    layer, neuron, count, value = top[0]
    centre = ns.context_ids[0, neuron, :, CONTEXT]
    assert count == int((centre == tok.convert_tokens_to_ids("t3")).sum())
    ctx = ns.contexts(1, neuron)
    assert len(ctx) == K and ctx[0]["value"] == pytest.approx(float(ns.top_values[0, neuron, 0]))
    df = ns.to_pandas()
    assert len(df) == 128 and {"mean", "max", "frequency", "top_token"} <= set(df.columns)
    back = ats.load(ns.save(tmp_path / "ns"))
    assert isinstance(back, ats.NeuronStats) and torch.equal(back.top_text, ns.top_text)
    assert back.vocab == ns.vocab and back.contexts(1, neuron) == ctx
    assert ns.plot() is not None
    with pytest.raises(ValueError, match="neuron 128 out of range"):
        ns.view(1, 128)
    with pytest.raises(ValueError, match="layer 0 is not in these statistics"):
        ns.contexts(0, 1)


_MEMORY_SCRIPT = textwrap.dedent("""
    import json, resource, torch, transformers as tf
    import attnscope as ats
    from attnscope import organisms
    torch.set_num_threads(1)
    _, tok = organisms.load("induction")
    torch.manual_seed(0)
    # A wide MLP: keeping every activation of 2,000 texts would take 500 MB more.
    cfg = tf.LlamaConfig(vocab_size=131, hidden_size=32, intermediate_size=2048, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64)
    model = tf.LlamaForCausalLM(cfg).eval()
    texts = [" ".join(f"t{(i * 7 + j) % 128}" for j in range(31)) for i in range(2000)]
    def run(n):
        ats.neuron_stats(model, tok, texts[:n], top_k=20, batch_size=50, progress=False)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # peak so far (KiB)
    run(200)  # warm-up: the allocator and the kernels reach their steady state
    print(json.dumps({"200": run(200), "2000": run(2000)}))
""")


def test_peak_memory_does_not_grow_with_the_corpus(tmp_path):
    """Peak RSS of a process after 2,000 texts (the peak is monotone: it covers the 200 before) within 10 % of the
    peak after 200."""
    script = tmp_path / "mem.py"
    script.write_text(_MEMORY_SCRIPT)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    peaks = json.loads(out.stdout.strip().splitlines()[-1])
    assert peaks["2000"] <= 1.10 * peaks["200"], peaks
