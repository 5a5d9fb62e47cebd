"""head_stats vs the same statistics computed from HF eager ``output_attentions=True``.

Throughput: N texts of 128 tokens (default 1,000), batch 8, both sides alternating (``--repeats`` passes over all
texts each, medians). The eager side runs the model with eager attention and ``output_attentions=True`` and computes
the statistics from the returned weights with vectorised PyTorch (``stats_from_weights``, float32 rows, float64
totals); attnscope keeps SDPA for the layer outputs and computes the statistics in the C++ chunk loop. Memory: one
batch of 8 texts of 512 tokens, each side in a fresh subprocess, peak RSS above the RSS right after the model is
loaded. Equality of every statistic (max abs diff) is asserted before anything is timed.
Run: ``python -m bench.head_stats`` (``--texts 200`` for a shorter run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from bench._harness import PeakRSS, alternate, peak_in_subprocess, write

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MODEL = "llama4-8q2kv-h256"
BATCH = 8


def load(attn: str):
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=1000, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                      num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=1024)
    model = LlamaModel(cfg)
    model.set_attn_implementation(attn)
    return model.eval()


def make_texts(n: int, length: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(5, 1000, (n, length), generator=g)


def eager_stats(model, texts: torch.Tensor) -> torch.Tensor:
    """[layer, head, stat] means from eager output_attentions (the peer)."""
    from attnscope.analysis.head_stats import stats_from_weights

    sums = counts = None
    with torch.no_grad():
        for start in range(0, len(texts), BATCH):
            ids = texts[start:start + BATCH]
            mask = torch.ones_like(ids)
            att = model(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
            per_layer = [stats_from_weights(w, ids, mask.bool()) for w in att]
            s = torch.stack([x[0].sum(0) for x in per_layer])
            c = per_layer[0][1].sum(0)
            sums, counts = (s, c) if sums is None else (sums + s, counts + c)
    return sums / counts


def attnscope_stats(model, texts: torch.Tensor) -> torch.Tensor:
    from attnscope.analysis import head_stats
    from attnscope.analysis.head_stats import STAT_NAMES

    hs = head_stats(model, None, texts, batch_size=BATCH, progress=False)
    return torch.stack([hs[n] if n in hs.names else torch.full_like(hs["entropy"], float("nan"))
                        for n in STAT_NAMES], dim=-1)


def measure(variant: str) -> None:
    """In a fresh process: peak RSS above the post-load baseline for one batch of 8 texts of 512 tokens."""
    torch.set_num_threads(2)
    model = load("eager" if variant == "eager" else "sdpa")
    texts = make_texts(BATCH, 512)
    import attnscope  # noqa: F401  (loaded before the baseline: both sides share it)

    with PeakRSS() as peak:
        out = (eager_stats if variant == "eager" else attnscope_stats)(model, texts)
        del out
    print(json.dumps({"peak_above_baseline_mib": peak.above_baseline, "baseline_mib": peak.baseline}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--measure", metavar="VARIANT")
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
        return
    torch.set_num_threads(2)
    sdpa, eager = load("sdpa"), load("eager")
    texts = make_texts(args.texts, 128)
    want = eager_stats(eager, texts[:32])
    got = attnscope_stats(sdpa, texts[:32])
    keep = ~torch.isnan(want[0, 0])  # no induction score on texts without repeats
    diff = (got[..., keep] - want[..., keep]).abs().max().item()
    assert diff <= 1e-5, f"head_stats differs from eager statistics by {diff}"
    times = alternate({"eager_output_attentions": lambda: eager_stats(eager, texts),
                       "attnscope_head_stats": lambda: attnscope_stats(sdpa, texts)},
                      repeats=args.repeats, warmup=0)
    mem = {v: peak_in_subprocess("bench.head_stats", [v])["peak_above_baseline_mib"] for v in ("eager", "attnscope")}
    tput = {v: args.texts / t["median_s"] for v, t in times.items()}
    row = {
        "model": MODEL, "texts": args.texts, "length": 128, "batch": BATCH, "max_abs_diff": diff, "times": times,
        "texts_per_s": tput, "throughput_ratio": tput["attnscope_head_stats"] / tput["eager_output_attentions"],
        "memory_length": 512, "peak_mib": mem, "mem_ratio": mem["attnscope"] / mem["eager"],
    }
    print(json.dumps(row), file=sys.stderr)
    payload = {"settings": {"repeats": args.repeats, "warmup": 0, "dtype": "float32", "threads": 2,
                            "peer": "HF eager attention with output_attentions=True, statistics from the weights in "
                                    "vectorised PyTorch"}, "results": [row]}
    table = "\n".join([
        "| model | texts x tokens | max abs diff | eager texts/s | attnscope texts/s | throughput ratio (goal ≥ 1.0) "
        "| peak MiB at L=512, batch 8: eager | attnscope | mem ratio (goal ≤ 0.2) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {MODEL} | {args.texts} x 128 | {diff:.1e} | {tput['eager_output_attentions']:.1f} "
        f"| {tput['attnscope_head_stats']:.1f} | {row['throughput_ratio']:.2f} | {mem['eager']:.0f} "
        f"| {mem['attnscope']:.0f} | {row['mem_ratio']:.3f} |",
    ])
    write("head_stats", payload, table)


if __name__ == "__main__":
    main()
