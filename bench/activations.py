"""Neuron statistics over a corpus: ``ats.neuron_stats`` vs a TransformerLens 4.3.0 ``run_with_cache`` loop.

Model: GPT-2 shape, random weights (seed 0), float32, 2 threads; ``--shape small`` is GPT-2 small (12 layers,
d = 768, vocabulary 50,257), ``--shape mini`` (default on this machine) 4 layers, d = 256, 4 heads, the same
vocabulary. Work: every layer's MLP neurons (``mlp_hidden`` = TransformerLens' ``blocks.{l}.mlp.hook_post``) over
``--texts`` texts of ``--length`` tokens in batches of ``--batch``: per neuron the sum, max, firing count (> 0) and
the top-20 (value, text, position) with a context window of +-8 tokens of activations.

* attnscope: ``ats.neuron_stats(model, tok, texts, top_k=20, context=8, batch_size=B)`` on the HF model (SDPA): hooks
  reduce each layer inside the forward (C++ running top-k), the forward stops after the last layer (no LM head).
* TransformerLens 4.3.0: ``TransformerBridge.boot_transformers`` on a copy of the same model; per batch
  ``bridge.run_with_cache(ids, names_filter=<the hook_post names>)`` then the same statistics in torch (``topk`` over
  the running list and the batch, windows gathered the same way) -- the straightforward loop a TransformerLens user
  writes. It cannot skip the unembedding: ``stop_at_layer=n_layers`` still runs it in TransformerLens 4.3.0 and
  ``stop_at_layer=-1`` drops the last block's hooks (checked), so the peer computes the logits.

Equality first: ``capture_activations`` vs ``run_with_cache`` on every site where the conventions match (resid_pre,
resid_mid, resid_post, attn_out, mlp_out, mlp_hidden = hook_post, head_out = attn.hook_z), max |diff| <= 1e-4; and
the two loops' top-20 values, means and maxima on the first batches. Timing: alternating, warm-up 1, ``--repeats``;
memory: each side in a fresh subprocess, peak RSS above the RSS after the model (and the bridge) is loaded
and one text has gone through (imports, the C++ extension, allocator pools).
Run: ``python -m bench.activations`` (needs bench/.env: ``bash bench/setup_env.sh``; the script re-runs itself there).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from bench._harness import PeakRSS, alternate, write
from bench.lens import build, model_with_bridge, tokenizer  # the same GPT-2-shaped model (random biases and gains) and tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
ENV_PY = HERE / ".env" / "bin" / "python"
SHAPES = {"small": dict(n_layer=12, n_embd=768, n_head=12, vocab=50257),
          "mini": dict(n_layer=4, n_embd=256, n_head=4, vocab=50257),
          "tiny": dict(n_layer=2, n_embd=64, n_head=4, vocab=1000)}
TOP_K, CONTEXT = 20, 8


def corpus(n: int, length: int, vocab: int) -> list[str]:
    g = torch.Generator().manual_seed(n * 7 + length)
    ids = torch.randint(1, vocab, (n, length), generator=g)
    return [" ".join(f"t{i}" for i in row.tolist()) for row in ids]


def bridge_of(model, tok, folder: str):
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    return TransformerBridge.boot_transformers(folder, hf_model=copy.deepcopy(model), tokenizer=tok).eval()


def ours(model, tok, texts, batch):
    import attnscope as ats

    return ats.neuron_stats(model, tok, texts, top_k=TOP_K, context=CONTEXT, batch_size=batch, progress=False)


def tl_stats(bridge, tok, texts, batch, n_layer):
    """The TransformerLens loop: run_with_cache on the hook_post names, then the same statistics in torch."""
    names = [f"blocks.{layer}.mlp.hook_post" for layer in range(n_layer)]
    state = {}
    w = 2 * CONTEXT + 1
    offsets = torch.arange(-CONTEXT, CONTEXT + 1)
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            ids = torch.tensor([tok(t)["input_ids"] for t in texts[start:start + batch]])
            _, cache = bridge.run_with_cache(ids, names_filter=lambda n: n in names)
            b, n = ids.shape
            keys = (torch.arange(start, start + b)[:, None] * 2**20 + torch.arange(n)[None]).flatten()
            for layer, name in enumerate(names):
                x = cache[name]  # [batch, pos, neuron]
                flat = x.reshape(b * n, -1)
                units = flat.shape[1]
                if layer not in state:
                    state[layer] = {"sum": torch.zeros(units, dtype=torch.float64), "max": flat.amax(0),
                                    "fired": torch.zeros(units, dtype=torch.long),
                                    "values": torch.empty(0, units), "keys": torch.empty(0, units, dtype=torch.long),
                                    "windows": torch.empty(0, units, w)}
                s = state[layer]
                s["sum"] += flat.sum(0, dtype=torch.float64)
                s["max"] = torch.maximum(s["max"], flat.amax(0))
                s["fired"] += (flat > 0).sum(0)
                pos = (torch.arange(n)[:, None] + offsets).clamp(0, n - 1)  # [pos, w]
                inside = ((torch.arange(n)[:, None] + offsets) >= 0) & ((torch.arange(n)[:, None] + offsets) < n)
                windows = torch.where(inside[None, :, None, :], x[:, pos].permute(0, 1, 3, 2), 0.0)
                windows = windows.reshape(b * n, units, w)
                values = torch.cat([s["values"], flat])
                allkeys = torch.cat([s["keys"], keys[:, None].expand(-1, units)])
                allwin = torch.cat([s["windows"], windows])
                top = values.topk(min(TOP_K, values.shape[0]), dim=0)
                s["values"] = top.values
                s["keys"] = allkeys.gather(0, top.indices)
                s["windows"] = allwin.gather(0, top.indices[..., None].expand(-1, -1, w))
    return state


def agreement(model, bridge, tok, shape) -> dict:
    import attnscope as ats

    ids = torch.randint(1, shape["vocab"], (2, 32), generator=torch.Generator().manual_seed(1))
    sites = {"resid_pre": "hook_resid_pre", "resid_mid": "hook_resid_mid", "resid_post": "hook_resid_post",
             "attn_out": "hook_attn_out", "mlp_out": "hook_mlp_out", "mlp_hidden": "mlp.hook_post",
             "head_out": "attn.hook_z"}
    res = ats.capture_activations(model, ids, sites=tuple(sites))
    with torch.no_grad():
        _, cache = bridge.run_with_cache(ids)
    diffs = {}
    for site, hook in sites.items():
        ref = torch.stack([cache[f"blocks.{layer}.{hook}"] for layer in range(shape["n_layer"])])
        diffs[site] = float((res.get(site) - ref.reshape(res.get(site).shape)).abs().max())
    texts = corpus(16, 32, shape["vocab"])
    a = ours(model, tok, texts, 8)
    t = tl_stats(bridge, tok, texts, 8, shape["n_layer"])
    top_diff = max(float((a.top_values[layer] - t[layer]["values"].T).abs().max()) for layer in range(shape["n_layer"]))
    mean_diff = max(float((a.mean[layer] - t[layer]["sum"] / a.n_tokens).abs().max())
                    for layer in range(shape["n_layer"]))
    out = {"max_abs_diff": diffs, "neuron_stats_top_value_diff": top_diff, "neuron_stats_mean_diff": mean_diff}
    assert max(diffs.values()) <= 1e-4, diffs
    assert top_diff <= 1e-4 and mean_diff <= 1e-6, out
    return out


def measure(variant: str, shape_name: str, n_texts: int, length: int, batch: int) -> None:
    """In a fresh process: peak RSS above the post-load baseline for one full pass."""
    torch.set_num_threads(2)
    shape = SHAPES[shape_name]
    model = build(**shape)
    tok = tokenizer(shape["vocab"])
    texts = corpus(n_texts, length, shape["vocab"])
    import attnscope  # noqa: F401  (loaded before the baseline)

    # Each side first runs one text (imports, the C++ extension, allocator pools), so the peak is the pass's own.
    if variant == "transformer_lens":
        with tempfile.TemporaryDirectory() as folder:
            bridge = bridge_of(model, tok, folder)
        del model
        tl_stats(bridge, tok, texts[:1], 1, shape["n_layer"])
        with PeakRSS() as peak:
            tl_stats(bridge, tok, texts, batch, shape["n_layer"])
    else:
        ours(model, tok, texts[:1], 1)
        with PeakRSS() as peak:
            ours(model, tok, texts, batch)
    print(json.dumps({"peak_mib": peak.above_baseline}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="mini", choices=sorted(SHAPES))
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure", nargs=5, metavar=("VARIANT", "SHAPE", "TEXTS", "LENGTH", "BATCH"))
    args = parser.parse_args()
    if Path(sys.prefix).resolve() != (HERE / ".env").resolve():
        if not ENV_PY.exists():
            sys.exit("bench/.env is missing: run `bash bench/setup_env.sh` first")
        os.execv(str(ENV_PY), [str(ENV_PY), "-m", "bench.activations", *sys.argv[1:]])
    if args.measure:
        v, s, n, length, b = args.measure
        measure(v, s, int(n), int(length), int(b))
        return
    torch.set_num_threads(2)
    shape = SHAPES[args.shape]
    model, tok, bridge = model_with_bridge(shape)
    check = agreement(model, bridge, tok, shape)
    texts = corpus(args.texts, args.length, shape["vocab"])
    times = alternate({"attnscope": lambda: ours(model, tok, texts, args.batch),
                       "transformer_lens": lambda: tl_stats(bridge, tok, texts, args.batch, shape["n_layer"])},
                      repeats=args.repeats, warmup=1)
    mem = {}
    for variant in ("attnscope", "transformer_lens"):
        out = subprocess.run([sys.executable, "-m", "bench.activations", "--measure", variant, args.shape,
                              str(args.texts), str(args.length), str(args.batch)], capture_output=True, text=True,
                             timeout=3600, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-2000:])
        mem[variant] = json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]
    n_tokens = args.texts * args.length
    ours_s, tl_s = times["attnscope"]["median_s"], times["transformer_lens"]["median_s"]
    table = "\n".join([
        f"GPT-2 shape `{args.shape}` ({shape['n_layer']} layers, d = {shape['n_embd']}, vocabulary {shape['vocab']}), "
        f"{args.texts} texts x {args.length} tokens, batch {args.batch}, top-{TOP_K} with +-{CONTEXT}-token windows, "
        f"2 threads; medians of {args.repeats} alternating runs; memory: peak RSS above the post-load baseline.",
        "",
        "| variant | time (s) | tokens/s | throughput vs TL | peak memory (MiB) | memory vs TL |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| attnscope neuron_stats | {ours_s:.2f} | {n_tokens / ours_s:,.0f} | {tl_s / ours_s:.2f}x | "
        f"{mem['attnscope']:.1f} | {mem['attnscope'] / max(mem['transformer_lens'], 1e-9):.3f} |",
        f"| TransformerLens run_with_cache loop | {tl_s:.2f} | {n_tokens / tl_s:,.0f} | 1.00x | "
        f"{mem['transformer_lens']:.1f} | 1.000 |",
        "",
        "Agreement (max |diff| vs `run_with_cache`, 2 x 32 tokens): "
        + ", ".join(f"{k} {v:.1e}" for k, v in check["max_abs_diff"].items())
        + f"; neuron statistics top-20 values {check['neuron_stats_top_value_diff']:.1e}, means "
        f"{check['neuron_stats_mean_diff']:.1e}.",
    ])
    write("activations", {"shape": args.shape, "texts": args.texts, "length": args.length, "batch": args.batch,
                          "times": times, "peak_mib": mem, "agreement": check}, table)


if __name__ == "__main__":
    main()
