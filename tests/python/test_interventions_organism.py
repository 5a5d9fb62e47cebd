"""Ground truth on the induction organism: ablations, residual patching, path patching and attribution patching
against its known mechanism (a previous-token head in layer 0 composed with an induction head in layer 1)."""

from __future__ import annotations

import pytest
import torch

import attnscope as ats
from attnscope.organisms.train import sample

S = 8  # segment length
K = 5  # the corrupted pair ends on the k-th token of the segment's second copy


@pytest.fixture(scope="module")
def organism():
    return ats.organisms.load("induction")


def copy_accuracy(model, ids):
    """Greedy next-token accuracy on tokens 2..S of the second copy (the organism's own measure)."""
    with torch.no_grad():
        pred = model(input_ids=ids).logits.argmax(-1)
    return float((pred[:, S + 1:2 * S] == ids[:, S + 2:2 * S + 1]).float().mean())


@pytest.mark.parametrize("how", ["zero", "mean", "resample"])
def test_ablating_either_head_of_the_circuit_drops_copying_to_chance(organism, how):
    model, _ = organism
    ids = sample(64, S, torch.Generator().manual_seed(0))
    reference = None if how == "zero" else sample(16, S, torch.Generator().manual_seed(1))
    assert copy_accuracy(model, ids) > 0.98  # nothing ablated
    for heads in ({1: [0]}, {0: [0]}):  # the induction head, the previous-token head
        with ats.intervene(model) as iv:
            iv.ablate_heads(heads, how=how, reference=reference)
            ablated = copy_accuracy(model, ids)
        assert ablated < 0.1, (heads, how, ablated)  # chance is 1/128; the first copy scores 0.0004
    with ats.intervene(model):  # an empty scope leaves it
        assert copy_accuracy(model, ids) > 0.98
    assert copy_accuracy(model, ids) > 0.98  # and so does leaving the scopes


def induction_pairs(n=4, seed=3):
    """clean = [bos, A, A[:K]], corrupted = [bos, B, A[:K]] (A, B disjoint): only the clean run can copy A[K]."""
    g = torch.Generator().manual_seed(seed)
    clean, corrupted, a, b = [], [], [], []
    for _ in range(n):
        perm = torch.randperm(128, generator=g)[:2 * S] + 3
        seg_a, seg_b = perm[:S], perm[S:]
        clean.append(torch.cat([torch.tensor([1]), seg_a, seg_a[:K]]))
        corrupted.append(torch.cat([torch.tensor([1]), seg_b, seg_a[:K]]))
        a.append(int(seg_a[K]))
        b.append(int(seg_b[K]))
    return torch.stack(clean), torch.stack(corrupted), a, b


def test_residual_patching_localises_the_induction_head_layer_and_the_repeated_position(organism):
    model, tok = organism
    clean, corrupted, a, b = induction_pairs()
    for i in range(clean.shape[0]):
        res = ats.activation_patching(model, clean[i:i + 1], corrupted[i:i + 1], metric=("logit_diff", a[i], b[i]),
                                      tokenizer=tok)
        grid = res.values()  # [layer, position], 0 = corrupted, 1 = clean
        # The induction head (layer 1) reads the position after the current token's earlier occurrence: position
        # K + 1 holds A[K] and, after layer 0, the previous token A[K - 1] = the current token. Patched into layer
        # 1's input there, the clean run's copy comes back.
        best = divmod(int(grid.argmax()), grid.shape[1])
        assert best == (1, K + 1), grid
        assert grid[1, K + 1] > 0.9
        # Patched into layer 0's input at position K, A[K - 1] becomes the previous token of position K + 1, which
        # holds B[K] in the corrupted run: the induction head matches there and copies B[K], the wrong way.
        assert grid[0, K] < -0.5
        rest = grid.clone()
        rest[1, K + 1] = rest[0, K] = 0
        assert rest.abs().max() < 0.2, grid  # nothing else matters by much: not the last position, not layer 0


def test_path_patching_finds_k_composition(organism):
    """Sender: the previous-token head; receiver: the induction head. Its effect goes through the key (the
    previous-token information the induction head matches on), not the query or the value."""
    model, _ = organism
    clean, corrupted, a, b = induction_pairs(n=2)
    res = ats.path_patching(model, clean[:1], corrupted[:1], metric=("logit_diff", a[0], b[0]),
                            senders=[(0, 0)], receivers=[(1, 0)])
    q, k, v = res.values("head_out")[0].tolist()
    assert abs(k) > 0.5 and abs(q) < 0.1 and abs(v) < 0.1, (q, k, v)
    assert res.columns == ["L1H0.q", "L1H0.k", "L1H0.v"] and res.rows == ["L0H0"]


def test_attribution_patching_fails_where_the_induction_attention_flips(organism):
    """The documented failure case: in the corrupted run the induction head does not attend to position K + 1 (no
    earlier occurrence of the current token), so the gradient there is ~0 and the first-order estimate misses the
    exact effect of ~1. Reported, not hidden."""
    model, _ = organism
    clean, corrupted, a, b = induction_pairs(n=1)
    kwargs = dict(metric=("logit_diff", a[0], b[0]))
    exact = ats.activation_patching(model, clean, corrupted, **kwargs)
    approx = ats.attribution_patching(model, clean, corrupted, **kwargs)
    cmp = approx.compare(exact)
    print(cmp, cmp.disagreements[:3])
    assert cmp.disagreements[0]["row"] == "1" and cmp.disagreements[0]["column"].startswith(f"{K + 1} ")
    assert exact.values()[1, K + 1] > 0.9 and abs(float(approx.values()[1, K + 1])) < 0.2
    assert cmp.correlation < 0.5
