"""Activation patching: ``ats.activation_patching`` vs TransformerLens 4.3.0 ``patching.get_act_patch_resid_pre``.

Model: GPT-2 shape, random weights with random biases and LN gains (``bench.lens.build``, seed 0), float32, SDPA,
2 threads; ``--shape mini`` (default) 4 layers, d = 256, 4 heads, vocabulary 50,257. Work: the full (layer x
position) ``resid_pre`` sweep of one clean/corrupted pair of L tokens (the corrupted input differs at two positions),
metric the logit difference of two tokens at the last position.

* attnscope: ``ats.activation_patching(model, clean, corrupted, metric=("logit_diff", a, b))`` on the HF model:
  patches batched to the memory budget, each chunk runs only the positions from its first patch on (the corrupted
  run's KV cache for the prefix) and only the layers from the patched one up (the corrupted run's lower-layer
  outputs), and only the last position's logits.
* TransformerLens 4.3.0: ``TransformerBridge.boot_transformers`` on a copy of the same model,
  ``clean_cache = bridge.run_with_cache(clean)[1]`` then ``patching.get_act_patch_resid_pre(bridge, corrupted,
  clean_cache, metric)``: one full forward per patch, as the library does it (its only setting is the metric).
* attnscope ``reuse=False``: the same batched sweep with one full forward per patch and every position's logits
  (what the KV prefix, the lower layers and the last-position logits save; the rest is batching and overhead).
* attribution patching: ``ats.attribution_patching`` (2 forwards + 1 backward), its time and its correlation with the
  exact sweep.

Equality first: both sweeps' raw metric values, max |diff| <= 1e-4 (asserted); that check is also the warm-up.
Timing: alternating, ``--repeats`` (``--warmup`` adds untimed rounds). Run: ``python -m bench.patching`` (needs
bench/.env: ``bash bench/setup_env.sh``; it re-runs itself there).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from bench._harness import alternate, write
from bench.lens import model_with_bridge

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
ENV_PY = HERE / ".env" / "bin" / "python"
SHAPES = {"mini": dict(n_layer=4, n_embd=256, n_head=4, vocab=50257),
          "tiny": dict(n_layer=2, n_embd=64, n_head=4, vocab=1000)}
A, B = 11, 22


def pair(length: int, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(length)
    clean = torch.randint(1, vocab, (1, length), generator=g)
    corrupted = clean.clone()
    for p in (length // 4, length // 2):
        corrupted[0, p] = (clean[0, p] + 1 + p) % (vocab - 1) + 1
    return clean, corrupted


def ours(model, clean, corrupted, reuse=True):
    import attnscope as ats

    return ats.activation_patching(model, clean, corrupted, metric=("logit_diff", A, B), progress=False, reuse=reuse)


def ours_attribution(model, clean, corrupted):
    import attnscope as ats

    return ats.attribution_patching(model, clean, corrupted, metric=("logit_diff", A, B))


def peer(bridge, clean, corrupted) -> torch.Tensor:
    from transformer_lens import patching

    def metric(logits):
        return logits[0, -1, A] - logits[0, -1, B]

    with torch.no_grad():
        _, cache = bridge.run_with_cache(clean)
        return patching.get_act_patch_resid_pre(bridge, corrupted, cache, metric)


def _table(args, shape: dict, rows: list[str]) -> str:
    return "\n".join([
        f"GPT-2 shape `{args.shape}` ({shape['n_layer']} layers, d = {shape['n_embd']}, {shape['n_head']} heads, "
        f"vocabulary {shape['vocab']}), random weights; full layer x position `resid_pre` sweep of one pair of L "
        f"tokens (two positions corrupted), metric logit(a) - logit(b) at the last position; 2 threads on a 2-core "
        f"machine shared with other jobs; medians of {args.repeats} alternating runs after the equality check (and "
        f"{args.warmup} untimed rounds). TransformerLens 4.3.0: `patching.get_act_patch_resid_pre` on a "
        "`TransformerBridge` (one full forward per patch).",
        "",
        "| L | patches | attnscope exact (s) | TransformerLens (s) | speed-up | attnscope reuse=False (s, vs reuse) "
        "| max abs diff | attribution patching (s) | its speed-up over exact | its correlation with exact |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="mini", choices=sorted(SHAPES))
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=0, help="untimed rounds (the equality check runs both first)")
    args = parser.parse_args()
    if Path(sys.prefix).resolve() != (HERE / ".env").resolve():
        if not ENV_PY.exists():
            sys.exit("bench/.env is missing: run `bash bench/setup_env.sh` first")
        os.execv(str(ENV_PY), [str(ENV_PY), "-m", "bench.patching", *sys.argv[1:]])
    import tqdm
    from functools import partialmethod

    tqdm.tqdm.__init__ = partialmethod(tqdm.tqdm.__init__, disable=True)  # TransformerLens' per-patch bar
    torch.set_num_threads(2)
    shape = SHAPES[args.shape]
    model, _, bridge = model_with_bridge(shape)
    rows, payload = [], {"shape": args.shape, "lengths": args.lengths, "repeats": args.repeats, "runs": {}}
    for length in args.lengths:
        clean, corrupted = pair(length, shape["vocab"])
        exact = ours(model, clean, corrupted)
        reference = peer(bridge, clean, corrupted).double()
        diff = float((exact.raw["resid_pre"][0] - reference).abs().max())
        assert diff <= 1e-4, diff
        approx = ours_attribution(model, clean, corrupted)
        cmp = approx.compare(exact)
        times = alternate({"attnscope": lambda: ours(model, clean, corrupted),
                           "transformer_lens": lambda: peer(bridge, clean, corrupted),
                           "no_reuse": lambda: ours(model, clean, corrupted, reuse=False),
                           "attribution": lambda: ours_attribution(model, clean, corrupted)},
                          repeats=args.repeats, warmup=args.warmup)
        t_ours, t_tl, t_ap, t_full = (times[k]["median_s"] for k in ("attnscope", "transformer_lens", "attribution",
                                                                       "no_reuse"))
        payload["runs"][str(length)] = {"times": times, "max_abs_diff": diff, "attribution_correlation":
                                        cmp.correlation, "patches": shape["n_layer"] * length}
        rows.append(f"| {length} | {shape['n_layer'] * length} | {t_ours:.3f} | {t_tl:.3f} | **{t_tl / t_ours:.2f}x** | "
                    f"{t_full:.3f} ({t_full / t_ours:.1f}x) | {diff:.1e} | {t_ap:.3f} | {t_ours / t_ap:.0f}x | "
                    f"{cmp.correlation:.3f} |")
        print(rows[-1], flush=True)
        write("patching", payload, _table(args, shape, rows))  # after every length: a stopped run keeps its rows


if __name__ == "__main__":
    main()
