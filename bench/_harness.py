"""Shared benchmark plumbing: alternating timing, peak memory in fresh subprocesses, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def alternate(variants: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1) -> dict[str, dict]:
    """Time each variant ``repeats`` times, alternating between them after ``warmup`` rounds."""
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {
        name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "runs": len(t), "times": t}
        for name, t in times.items()
    }


def rss_mib() -> float:
    """Current resident set size (MiB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """Peak RSS (MiB) while the block runs, sampled every millisecond (ru_maxrss cannot be reset after the
    model load, whose own peak may exceed the measured call's)."""

    def __enter__(self):
        import threading

        self.baseline = rss_mib()
        self.peak = self.baseline
        self._stop = threading.Event()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, rss_mib())
                time.sleep(0.001)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())

    @property
    def above_baseline(self) -> float:
        return self.peak - self.baseline


def peak_in_subprocess(module: str, args: list[str]) -> dict:
    """Run ``python -m module --measure ARGS`` in a fresh process; it prints one JSON line with its peaks."""
    out = subprocess.run([sys.executable, "-m", module, "--measure", *args], capture_output=True, text=True,
                         timeout=1800, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def environment() -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    import transformers

    import attnscope

    return {
        "commit": commit,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attnscope": attnscope.__version__,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
    }


def write(name: str, payload: dict, table: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({**payload, "env": environment()}, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(table + "\n")
    print(table)
