"""Long contexts and devices: peak memory and time of reduced capture, head statistics, rollout/flow rows and
gradient attribution on a tiny Llama-shaped model (2 layers, 32 q heads, 8 kv heads, head_dim 8, positions set to
the longest L), on the CPU or a CUDA device.

Peak memory is the tensor memory allocated during the call above what was allocated before it
(:func:`attnscope.memory.peak_memory`: the CUDA allocator's peak, or the PyTorch profiler's allocation trace on the
CPU), so the model's own footprint is not counted. Eager ``output_attentions`` (all heads of every layer) is the
baseline of ``reduce="mean"`` capture (goal: at most 1/20 of it); where eager would not fit (``--eager-max``), its
peak is extrapolated from the longest L measured as ``(L / L0)²`` and marked so. Gradient attribution (saliency)
runs with ``memory_budget=`` and its peak must stay within it.

Run: ``python -m bench.device`` (CPU: L = 512, 2048, 8192; eager measured up to 2048, flow rows at 512); ``--device cuda`` in
bench/gpu_check.sh. ``--quick`` for the dry run (tiny sizes, no result file unless ``--out``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import attnscope as ats
from attnscope.memory import peak_memory
from bench._harness import write

MODEL = "llama2-32q8kv-d8"
MiB = 2**20


def load(max_len: int, device: str, attn: str = "sdpa"):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                      num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=max_len)
    model = LlamaForCausalLM(cfg).eval().to(device)
    model.set_attn_implementation(attn)
    return model


def timed_peak(fn, device):
    start = time.perf_counter()
    result, peak = peak_memory(fn, device=device)
    return result, peak, time.perf_counter() - start


def eager_peak(model, ids, device):
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            _, peak, _ = timed_peak(lambda: model(ids, output_attentions=True).attentions, device)
    finally:
        model.set_attn_implementation("sdpa")
    return peak


def measure(model, length: int, device: str, eager_max: int, budget: int, flow_max: int, eager_at: dict) -> dict:
    ids = torch.randint(3, 97, (1, length), generator=torch.Generator().manual_seed(0)).to(device)
    row = {"L": length}
    if length <= eager_max:
        eager_at[length] = eager_peak(model, ids, device)
        row["eager_peak"], row["eager_note"] = eager_at[length], "measured"
    else:
        l0 = max(eager_at)
        row["eager_peak"], row["eager_note"] = eager_at[l0] * (length / l0) ** 2, f"extrapolated from L={l0}"
    res, row["mean_peak"], row["mean_s"] = timed_peak(
        lambda: ats.capture_attention(model, ids, reduce="mean", query_chunk=None), device)
    _, row["rollout_peak"], row["rollout_s"] = timed_peak(lambda: ats.rollout(res, rows=[length - 1]), device)
    if length <= flow_max:
        _, _, row["flow_s"] = timed_peak(lambda: ats.attention_flow(res, rows=[length - 1]), device)
    del res
    _, row["stats_peak"], row["stats_s"] = timed_peak(
        lambda: ats.head_stats(model, None, ids, batch_size=1, progress=False), device)
    attr, row["grad_peak"], row["grad_s"] = timed_peak(
        lambda: ats.attribute(model, ids, method="saliency", memory_budget=budget, progress=False), device)
    assert torch.isfinite(attr.scores).all()
    row["budget"] = budget
    return row


def table(rows: list[dict], device: str) -> str:
    lines = [
        f"Device: {device}. Peaks are tensor memory above the call's start (model and inputs not counted); the "
        "machine was shared with other jobs (times are indicative, memory is exact).",
        "",
        "| model | L | eager output_attentions peak MiB | mean capture peak MiB | mean / eager (goal ≤ 0.05) | "
        "capture s | rollout row peak MiB (s) | flow row s | head stats peak MiB (s) | saliency peak MiB / budget "
        "MiB (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        eager = f"{r['eager_peak'] / MiB:.0f}" + ("" if r["eager_note"] == "measured" else f" ({r['eager_note']})")
        flow = f"{r['flow_s']:.2f}" if "flow_s" in r else "not run"
        lines.append(
            f"| {MODEL} | {r['L']} | {eager} | {r['mean_peak'] / MiB:.0f} | {r['mean_peak'] / r['eager_peak']:.3f} | "
            f"{r['mean_s']:.2f} | {r['rollout_peak'] / MiB:.0f} ({r['rollout_s']:.2f}) | {flow} | "
            f"{r['stats_peak'] / MiB:.0f} ({r['stats_s']:.2f}) | {r['grad_peak'] / MiB:.0f} / {r['budget'] / MiB:.0f} "
            f"({r['grad_s']:.2f}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--eager-max", type=int, default=None, help="longest L eager runs at (default: 2048 on CPU)")
    parser.add_argument("--flow-max", type=int, default=512,
                        help="longest L for an attention-flow row (a row is L max-flow problems on layers·L² arcs)")
    parser.add_argument("--budget-mib", type=int, default=1024, help="memory_budget of the saliency run")
    parser.add_argument("--quick", action="store_true", help="dry run: no result file unless --out")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    eager_max = args.eager_max or (max(args.lengths) if args.device.startswith("cuda") else 2048)
    model = load(max(args.lengths), args.device)
    eager_at: dict[int, int] = {}
    rows = [measure(model, L, args.device, eager_max, args.budget_mib * MiB, args.flow_max, eager_at)
            for L in sorted(args.lengths)]
    for r in rows:
        assert r["grad_peak"] <= r["budget"], f"saliency at L={r['L']} used {r['grad_peak']} > budget {r['budget']}"
    text = table(rows, args.device)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        print(text)
    elif not args.quick:
        write("device", {"rows": rows, "device": args.device}, text)
    else:
        print(text)


if __name__ == "__main__":
    main()
