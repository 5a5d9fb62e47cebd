"""ats.evaluate and ats.benchmark: closed forms on a linear model, peers (Captum, scipy, scikit-learn) as oracles,
ground truth on the induction organism, generation, KV reuse, results and bad input."""

from __future__ import annotations

import attnscope as ats
import numpy as np
import pytest
import torch
from attnscope.attribution import Class, TokenId
from attnscope.quality import scores as rules
from attribution_models import tiny_bert, tiny_gpt2, word_tokenizer
from quality_models import LinearBag
from tables import read_table

IDS = torch.tensor([[3, 7, 1, 9, 4, 11, 5, 2]])


def _curve(model, cls, order, replacement):
    """Closed form: the class logit after removing the features in ``order`` one by one."""
    c = model.contributions(IDS[0], cls, replacement)
    with torch.no_grad():
        f_x = float(model(IDS).logits[0, cls])
    return np.array([f_x - float(c[list(order[:k])].sum()) for k in range(len(order) + 1)]), c


@pytest.mark.parametrize("removal", ["replace", "delete"])
def test_linear_model_curves_and_aopc_have_closed_forms(removal):
    model = LinearBag()
    scores = torch.randn(1, IDS.shape[1], generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    repl = 0 if removal == "replace" else None
    ev = ats.evaluate(model, IDS, scores.float(), target=Class(1), score="target", removal=removal, replacement=0,
                      fixed="none", metrics=["deletion", "insertion", "comprehensiveness", "sufficiency", "tau_loo"])
    s = scores[0].float().double().numpy()
    order = np.argsort(s)[::-1]
    want, c = _curve(model, 1, order, repl)
    if removal == "delete":  # every token deleted: the row is the replacement token alone (a model needs a token)
        want[-1] += float(model.contributions(torch.tensor([0]), 1, None)[0])
    np.testing.assert_allclose(ev.curves["deletion"][0].numpy(), want, atol=1e-5)
    assert abs(float(ev.values["deletion"][0]) - ((want[1:] + want[:-1]) / 2).mean()) < 1e-5
    # Insertion of the top k = removal of all the others.
    total = float(c.sum())
    ins = [want[-1] + float(c[list(order[:k])].sum()) for k in range(len(order) + 1)]
    if removal == "delete":
        ins[1:] = [v - float(model.contributions(torch.tensor([0]), 1, None)[0]) for v in ins[1:]]
    np.testing.assert_allclose(ev.curves["insertion"][0].numpy(), ins, atol=1e-5)
    # AOPC: top 10%..100% of 8 features, positive scores only, repeated rationales skipped.
    sets = []
    for t in np.arange(0.1, 1.1, 0.1):
        k = int(t * 8)
        top = [int(i) for i in order[:k] if s[i] > 0] if k else []
        if top and (not sets or set(top) != set(sets[-1])):
            sets.append(top)
    comp = np.mean([float(c[top].sum()) for top in sets])
    suff = np.mean([total - float(c[top].sum()) for top in sets])
    assert abs(float(ev.values["comprehensiveness"][0]) - comp) < 1e-5
    assert abs(float(ev.values["sufficiency"][0]) - suff) < 1e-5
    # Leave-one-out of a linear model is the contribution itself.
    assert abs(float(ev.values["tau_loo"][0]) - rules.kendall_tau_b(c.numpy(), s)) < 1e-12


def test_exact_contributions_score_best_on_the_linear_model():
    model = LinearBag()
    exact = model.contributions(IDS[0], 1, 0).float().unsqueeze(0)
    ev = ats.evaluate(model, IDS, exact, target=Class(1), score="target", replacement=0, fixed="none",
                      metrics=["tau_loo", "deletion", "comprehensiveness"])
    assert float(ev.values["tau_loo"][0]) == pytest.approx(1.0)
    worse = ats.evaluate(model, IDS, -exact, target=Class(1), score="target", replacement=0, fixed="none",
                         metrics=["tau_loo", "deletion"])
    assert float(worse.values["tau_loo"][0]) == pytest.approx(-1.0)
    assert float(ev.values["deletion"][0]) < float(worse.values["deletion"][0]) - 1.0


def test_kendall_and_auprc_match_scipy_and_sklearn():
    stats = pytest.importorskip("scipy.stats")
    metrics = pytest.importorskip("sklearn.metrics")
    g = np.random.default_rng(0)
    for _ in range(20):
        x = g.integers(0, 4, 12).astype(float)  # ties on purpose
        y = g.normal(size=12).round(1)
        assert abs(rules.kendall_tau_b(x, y) - stats.kendalltau(x, y)[0]) < 1e-12
        truth = g.integers(0, 2, 12)
        truth[0] = 1
        p, r, _ = metrics.precision_recall_curve(truth, y)
        assert abs(rules.auprc(truth, y) - metrics.auc(r, p)) < 1e-12
    import warnings

    with warnings.catch_warnings():  # no positive: scikit-learn warns and sets recall to 1
        warnings.simplefilter("ignore")
        p, r, _ = metrics.precision_recall_curve(np.zeros(12), y)
    assert abs(rules.auprc(np.zeros(12), y) - metrics.auc(r, p)) < 1e-12


def test_plausibility_token_f1_and_iou_by_hand():
    truth = np.array([1, 1, 0, 0, 1, 0])
    s = np.array([0.9, -0.2, 0.5, 0.1, 0.8, 0.0])
    # top 3 (positive): 0, 4, 2 -> tp 2, precision 2/3, recall 2/3
    assert rules.token_f1(truth, s, k=3) == pytest.approx(2 / 3)
    assert rules.token_iou(truth, s, k=3) == pytest.approx(2 / 4)
    assert rules.token_f1(truth, -np.abs(s) - 1, k=3) == 0.0  # no positive score: nothing chosen
    assert rules.token_f1(np.zeros(6), s, k=3) == 0.0 and rules.token_iou(np.zeros(6), s, k=3) == 0.0  # ferret


def _ferret_aopc(model, tok, text, scores, target, sufficiency):
    """ferret 0.4's AOPC, written out: tokens without [CLS]/[SEP], top 10%..100% by score (positive only), skip a
    rationale equal to the previous one, delete, decode, re-tokenise, softmax probability."""
    def prob(texts):
        enc = tok(texts, return_tensors="pt", padding=True)
        with torch.no_grad():
            return model(**enc).logits.softmax(-1)[:, target].double().numpy()

    ids = tok(text)["input_ids"][1:-1]
    s = np.asarray(scores[1:-1], dtype=np.float64)
    texts, last = [], None
    for t in np.arange(0.1, 1.1, 0.1):
        k = int(t * len(s))
        if not 0 < k <= len(s):
            continue
        top = [i for i in s.argsort()[-k:][::-1] if s[i] > 0]
        if not top or (last is not None and set(top) == last):
            continue
        last = set(top)
        kept = np.array(ids)[top] if sufficiency else np.delete(np.array(ids), top)
        texts.append(tok.decode(kept))
    return float(np.mean(prob([text])[0] - prob(texts)))


def test_ferret_aopc_with_delete_and_roundtrip():
    tok, model = word_tokenizer(), tiny_bert()
    text = "the big cat sat on the red mat and ran"
    enc = tok(text, return_tensors="pt")
    res = ats.attribute(model, enc, method="integrated_gradients", tokenizer=tok, target=Class(2))
    ev = ats.evaluate(model, enc, res, tokenizer=tok, removal="delete", roundtrip=True, fixed="first_last",
                      metrics=["comprehensiveness", "sufficiency"])
    s = res.scores[0].tolist()
    assert abs(float(ev.values["comprehensiveness"][0]) - _ferret_aopc(model, tok, text, s, 2, False)) < 1e-6
    assert abs(float(ev.values["sufficiency"][0]) - _ferret_aopc(model, tok, text, s, 2, True)) < 1e-6


def test_kv_reuse_gives_the_full_forward_values_with_fewer_positions():
    tok, model = word_tokenizer(False), tiny_gpt2()
    enc = tok(["the cat sat on the mat and the dog", "a red house"], return_tensors="pt", padding=True)
    res = ats.attribute(model, enc, method="saliency", tokenizer=tok)
    names = ["comprehensiveness", "sufficiency", "deletion", "insertion", "tau_loo", "log_odds"]
    fast = ats.evaluate(model, enc, res, tokenizer=tok, metrics=names, kv_reuse=True)
    slow = ats.evaluate(model, enc, res, tokenizer=tok, metrics=names, kv_reuse=False)
    assert fast.kv_reuse and not slow.kv_reuse
    for n in names:
        torch.testing.assert_close(fast.values[n], slow.values[n], atol=1e-6, rtol=0, equal_nan=True)


def test_prefix_saving_counts_positions_before_the_first_removed_token():
    from attnscope.quality.removal import prefix_saving

    features = torch.tensor([[-1, 0, 1, 1, 2]])  # a fixed token, then features 0, 1 (two tokens), 2
    present = torch.tensor([[True, True, True], [True, False, True], [False, True, True], [True, True, False]])
    # first removed token: none (5), position 2, position 1, position 4
    assert prefix_saving(features, [present]) == pytest.approx((5 + 2 + 1 + 4) / 5 / 4)


def test_generation_per_token_equals_a_loop_of_single_target_evaluations():
    tok, model = word_tokenizer(False), tiny_gpt2()
    gen = ats.attribute_generation(model, tok, "the cat sat on", max_new_tokens=3, method="saliency")
    names = ["comprehensiveness", "sufficiency", "deletion"]
    ev = ats.evaluate(model, None, gen, tokenizer=tok, metrics=names)
    ids = torch.cat([gen.prompt_ids, gen.generated_ids])
    p = gen.prompt_ids.numel()
    for t in range(gen.generated_ids.numel()):
        one = ats.evaluate(model, ids[: p + t].unsqueeze(0), gen.matrix[t, : p + t].unsqueeze(0), tokenizer=tok,
                           target=TokenId(int(gen.generated_ids[t])), metrics=names)
        for n in names:
            assert abs(float(ev.values[n][t]) - float(one.values[n][0])) < 1e-6
    # and the step probability is what the generation recorded as the teacher-forced probability
    assert ev.values["comprehensiveness"].shape == (gen.generated_ids.numel(),)


@pytest.fixture(scope="module")
def organism():
    from attnscope import organisms

    return organisms.load("induction")


def test_organism_earlier_occurrence_ranked_first_is_most_comprehensive(organism):
    model, tok = organism
    enc = tok("t10 t20 t30 t40 t50 t60 t10 t20 t30", return_tensors="pt")  # predicts t40, copied from position 4
    with torch.no_grad():
        assert tok.convert_ids_to_tokens([int(model(**enc).logits[0, -1].argmax())]) == ["t40"]
    n = enc["input_ids"].shape[1]
    base = torch.linspace(0.1, 0.2, n)
    comp = {}
    for j in range(1, n):
        s = base.clone()
        s[j] = 1.0
        ev = ats.evaluate(model, enc, s.unsqueeze(0), tokenizer=tok, metrics=["comprehensiveness"], based_on="k",
                          thresholds=[1, 2])
        comp[j] = float(ev.values["comprehensiveness"][0])
    # 4: the earlier t40 (the copied token); 3: the earlier t30 (the induction head's key); n - 1: the current t30
    mechanism = (3, 4)
    assert max(comp, key=comp.get) in mechanism, comp
    others = [v for j, v in comp.items() if j not in (*mechanism, n - 1)]
    assert min(comp[j] for j in mechanism) > max(others) + 0.3, comp


@pytest.mark.parametrize("which", ["organism", "minilm"])
def test_random_attribution_is_less_comprehensive_than_integrated_gradients(which, organism):
    if which == "organism":
        model, tok = organism
        enc = tok(["t10 t20 t30 t40 t50 t60 t10 t20 t30", "t5 t6 t7 t8 t9 t5 t6"], return_tensors="pt", padding=True)
        kw, margin = {}, 0.2
    else:
        from attnscope.attribution import Similarity
        from attribution_models import minilm

        model, tok = minilm()
        enc = tok(["a cat sat on the warm mat"], return_tensors="pt")
        kw, margin = {"target": Similarity("a kitten on a rug"), "score": "target"}, 0.02
    res = ats.attribute(model, enc, method="integrated_gradients", tokenizer=tok, n_steps=8,
                        **{k: v for k, v in kw.items() if k == "target"})
    ig = ats.evaluate(model, enc, res, tokenizer=tok, metrics=["comprehensiveness"], **kw)
    rnd = torch.rand(res.scores.shape, generator=torch.Generator().manual_seed(1))
    ran = ats.evaluate(model, enc, rnd, tokenizer=tok, metrics=["comprehensiveness"],
                       target=kw.get("target", res.target), score=kw.get("score", "prob"))
    assert float(ig.values["comprehensiveness"].mean()) > float(ran.values["comprehensiveness"].mean()) + margin


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "occlusion"])
def test_randomisation_check_separates_trained_from_randomised_weights(method, organism):
    model, tok = organism
    segment = "t5 t17 t33 t48 t60 t71 t82 t99 t104 t115 t120 t2"
    enc = tok(segment + " " + " ".join(segment.split()[:8]), return_tensors="pt")
    opts = {"n_steps": 8} if method == "integrated_gradients" else {}
    res = ats.attribute(model, enc, method=method, tokenizer=tok, **opts)
    ev = ats.evaluate(model, enc, res, tokenizer=tok, metrics=["randomization_cascading", "randomization_independent"],
                      attribute_options=opts)
    cascading = ev.per_layer["randomization_cascading"]
    assert cascading.shape == (1, 2)
    assert float(ev.values["randomization_cascading"][0]) < 0.5, ev.per_layer
    assert float(cascading[0, -1]) < 0.5, ev.per_layer  # every block randomised
    # control: the same check against itself without randomising gives rho = 1
    from attnscope.quality.sanity import spearman

    again = ats.attribute(model, enc, method=method, tokenizer=tok, seed=0).scores[0]
    assert spearman(again, ats.attribute(model, enc, method=method, tokenizer=tok, seed=0).scores[0]) == 1.0


def _bert_embedding_model():
    model = tiny_bert()
    tok = word_tokenizer()
    enc = tok("the cat sat on the mat", return_tensors="pt")
    return model, tok, enc


def test_sensitivity_max_equals_captums_with_the_same_draws():
    from captum.metrics import sensitivity_max

    model, tok, enc = _bert_embedding_model()
    target = 1
    ev = ats.evaluate(model, enc, ats.attribute(model, enc, method="saliency", target=Class(target)),
                      metrics=["sensitivity_max"], target=Class(target), n_perturb_samples=4, perturb_radius=0.05,
                      seed=7)
    word = model.get_input_embeddings()

    def explain(emb):  # saliency: sum over hidden of |d logit / d word embedding|
        emb = (emb[0] if isinstance(emb, tuple) else emb).detach().requires_grad_(True)
        with torch.enable_grad():  # Captum calls it under no_grad
            out = model(inputs_embeds=emb, attention_mask=enc["attention_mask"].expand(emb.shape[0], -1),
                        token_type_ids=enc["token_type_ids"].expand(emb.shape[0], -1)).logits[:, target]
            (grad,) = torch.autograd.grad(out.sum(), emb)
        return (grad.abs().sum(-1),)  # Captum iterates over the explanation: a tuple, one tensor per input

    with torch.no_grad():
        emb = word(enc["input_ids"])
    torch.manual_seed(7)
    want = sensitivity_max(explain, emb, perturb_radius=0.05, n_perturb_samples=4)
    assert abs(float(ev.values["sensitivity_max"][0]) - float(want[0])) < 1e-5


@pytest.mark.parametrize("level", ["embedding", "token"])
def test_infidelity_equals_captums_with_the_same_draws(level):
    from attnscope.quality.robustness import LEVELS
    from captum.metrics import infidelity

    assert level in LEVELS
    model, tok, enc = _bert_embedding_model()
    res = ats.attribute(model, enc, method="input_x_gradient", target=Class(0))
    n, std, seed = 6, 0.05, 3
    ev = ats.evaluate(model, enc, res, metrics=["infidelity"], target=Class(0), score="target",
                      infidelity_level=level, n_perturb_samples=n, noise_std=std, seed=seed)
    word = model.get_input_embeddings()
    with torch.no_grad():
        emb = word(enc["input_ids"]).double()
    g = torch.Generator().manual_seed(seed)
    if level == "token":
        eps = torch.randn((n, emb.shape[1]), generator=g, dtype=torch.float64) * std
        draws = eps.unsqueeze(-1) * emb
        attr = (res.scores[0].double() / (emb[0] ** 2).sum(-1)).unsqueeze(-1) * emb[0]  # a . e_j = score_j
    else:
        draws = torch.randn((n, *emb.shape[1:]), generator=g, dtype=torch.float64) * std
        attr = res.raw[0].double()
    state = {"k": 0}

    def perturb(x):
        k = state["k"]
        state["k"] += x.shape[0]
        d = draws[k:k + x.shape[0]]
        return d, x - d

    def forward(e):
        c = e.shape[0]
        return model(inputs_embeds=e.float(), attention_mask=enc["attention_mask"].expand(c, -1),
                     token_type_ids=enc["token_type_ids"].expand(c, -1)).logits[:, 0].double()

    want = infidelity(forward, perturb, emb, attr.unsqueeze(0), n_perturb_samples=n, max_examples_per_batch=n)
    assert abs(float(ev.values["infidelity"][0]) - float(want[0])) < 1e-5 * max(1.0, float(want[0]))


def test_data_randomization_needs_labels_and_runs_with_them():
    model, tok = tiny_bert(), word_tokenizer()
    enc = tok(["the cat sat", "a dog ran to the house"], return_tensors="pt", padding=True)
    res = ats.attribute(model, enc, method="saliency")
    with pytest.raises(ValueError, match="data_randomization.*needs labels"):
        ats.evaluate(model, enc, res, metrics=["data_randomization"])
    ev = ats.evaluate(model, enc, res, metrics=["data_randomization"], labels=[0, 1], randomization_steps=5)
    assert ev.per_layer["data_randomization"].shape == (2, 1)
    assert bool(((ev.values["data_randomization"] >= 0) & (ev.values["data_randomization"] <= 1)).all())


# --- bad input ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bert_case():
    tok, model = word_tokenizer(), tiny_bert()
    enc = tok(["the cat sat on the mat"], return_tensors="pt")
    return model, tok, enc, ats.attribute(model, enc, method="saliency", tokenizer=tok)


def test_bad_rationale_length(bert_case):
    model, tok, enc, res = bert_case
    with pytest.raises(ValueError, match=r"rationale\[0\] has 3 values; example 0 has 8 tokens"):
        ats.evaluate(model, enc, res, tokenizer=tok, rationale=[[0, 1, 0]], metrics=["auprc"])


def test_attribution_from_other_inputs(bert_case):
    model, tok, _, res = bert_case
    other = tok(["a dog ran to the red house"], return_tensors="pt")
    with pytest.raises(ValueError, match="computed on other inputs"):
        ats.evaluate(model, other, res, tokenizer=tok)


def test_unknown_metric_lists_valid_ones(bert_case):
    model, tok, enc, res = bert_case
    with pytest.raises(ValueError, match="unknown metric 'aopc'; valid metrics: comprehensiveness, sufficiency"):
        ats.evaluate(model, enc, res, metrics=["aopc"])


def test_plausibility_without_rationale_and_other_bad_options(bert_case):
    model, tok, enc, res = bert_case
    with pytest.raises(ValueError, match="needs a human rationale"):
        ats.evaluate(model, enc, res, metrics=["token_f1"])
    with pytest.raises(ValueError, match="unknown removal='drop'"):
        ats.evaluate(model, enc, res, removal="drop")
    with pytest.raises(ValueError, match="roundtrip=True"):
        ats.evaluate(model, enc, res, roundtrip=True)
    with pytest.raises(TypeError, match="attribution must be an AttributionResult"):
        ats.evaluate(model, enc, [0.1, 0.2])
    with pytest.raises(ValueError, match="is not computed for a GenerationAttribution"):
        gen = ats.attribute_generation(tiny_gpt2(), word_tokenizer(False), "the cat", max_new_tokens=1)
        ats.evaluate(tiny_gpt2(), None, gen, metrics=["sensitivity_max"])
    with pytest.raises(ValueError, match="re-run the attribution method"):
        ats.evaluate(model, enc, res.scores, metrics=["sensitivity_max"])


# --- results and benchmark ----------------------------------------------------------------------------------------
def test_benchmark_resumes_and_its_result_round_trips(tmp_path, monkeypatch):
    import importlib

    bench = importlib.import_module("attnscope.quality.benchmarking")

    tok, model = word_tokenizer(), tiny_bert()
    texts = ["the cat sat on the mat", "a dog ran", "she was big and red"]
    kw = dict(methods=["saliency", "occlusion"], metrics=["comprehensiveness", "deletion"], progress=False)
    first = ats.benchmark(model, tok, texts, out=tmp_path / "run", **kw)
    monkeypatch.setattr(bench, "attribute", lambda *a, **k: pytest.fail("a finished explanation was recomputed"))
    again = ats.benchmark(model, tok, texts, out=tmp_path / "run", **kw)
    summary = first.to_pandas()
    assert set(summary["metric"]) == {"comprehensiveness", "deletion", "runtime_s"} and len(summary) == 6
    assert summary.drop(columns=["mean", "ci95"]).equals(again.to_pandas().drop(columns=["mean", "ci95"]))
    q = first.to_pandas(long=True).query("metric != 'runtime_s'")
    assert np.allclose(q["value"], again.to_pandas(long=True).query("metric != 'runtime_s'")["value"], equal_nan=True)
    loaded = ats.load(first.save(tmp_path / "saved"))
    assert loaded.records == first.records and loaded.best() == first.best()
    with pytest.raises(ValueError, match="unknown method"):
        ats.benchmark(model, tok, texts, methods=["nope"], progress=False)


def test_evaluation_result_views_in_chromium(bert_case, browser, tmp_path):
    model, tok, enc, res = bert_case
    ev = ats.evaluate(model, enc, res, tokenizer=tok)
    loaded = ats.load(ev.save(tmp_path / "ev"))
    torch.testing.assert_close(loaded.values["deletion"], ev.values["deletion"])
    assert set(ev.to_pandas()["metric"]) == set(ev.values)
    ev.plot()
    bench = ats.benchmark(model, tok, ["the cat sat", "a dog ran to the mat"], methods=["saliency", "occlusion"],
                          metrics=["comprehensiveness", "sufficiency"], progress=False)
    bench.plot()
    for view in (ev.view(), bench.view()):
        path = view.save_html(tmp_path / "v.html")
        browser.get(path.as_uri())
        errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert not errors, errors
        best = browser.find_elements("css selector", "td.ats-best")
        assert len(best) >= 2  # one per metric column at least
        assert "http" not in view.html


def _cli(*args):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "attnscope", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, HF_HUB_OFFLINE="1"))


def test_cli_benchmark_matches_the_python_api(tmp_path, organism):
    from attnscope.organisms import path

    texts = ["t1 t5 t9 t2 t1 t5 t9"]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    bad = _cli("benchmark", path("induction"), "--texts", tmp_path / "texts.txt", "--metrics", "aopc")
    assert bad.returncode == 2 and "unknown metric 'aopc'; valid metrics: comprehensiveness" in bad.stderr
    out = _cli("benchmark", path("induction"), "--texts", tmp_path / "texts.txt", "--methods", "saliency,occlusion",
               "--metrics", "comprehensiveness,deletion", "--out", tmp_path / "b", "--quiet")
    assert out.returncode == 0, out.stderr
    table = read_table(tmp_path / "b", "benchmark").set_index(["method", "metric"])
    model, tok = organism
    want = ats.benchmark(model, tok, texts, methods=["saliency", "occlusion"], metrics=["comprehensiveness", "deletion"],
                         progress=False).to_pandas().set_index(["method", "metric"])
    for key in [("saliency", "comprehensiveness"), ("occlusion", "deletion")]:
        assert abs(table.loc[key, "mean"] - want.loc[key, "mean"]) < 1e-9
    assert "ats-best" in (tmp_path / "b" / "index.html").read_text()


def test_hooks_removed_and_weights_untouched_also_on_errors(bert_case, monkeypatch):
    import importlib

    model, tok, enc, res = bert_case
    before = {k: v.clone() for k, v in model.state_dict().items()}
    embed = model.get_input_embeddings()
    ats.evaluate(model, enc, res, metrics=["sensitivity_max", "randomization_independent"], n_perturb_samples=2)
    assert not embed._forward_hooks
    evaluate_module = importlib.import_module("attnscope.quality.evaluation")
    calls = {"n": 0}
    real = evaluate_module.attribute

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the first perturbed explanation, inside the shifted-embedding hook
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "attribute", failing)
    with pytest.raises(RuntimeError, match="boom"):
        ats.evaluate(model, enc, res, metrics=["sensitivity_max"], n_perturb_samples=2)
    assert not embed._forward_hooks
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())  # scoped_model restored the flags
