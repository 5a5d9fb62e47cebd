"""bench/gpu_check.sh --dry-run: the GPU machine's prepared run, every step in its CPU form, to completion."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args, out):
    return subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OUT": str(out)})


def test_dry_run_runs_every_step_to_completion(tmp_path):
    done = _run("--dry-run", out=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    steps = [line for line in done.stdout.splitlines() if line.startswith("=== ")]
    assert len(steps) == 5 and "done: results in" in steps[-1], steps
    assert "all features within" in (tmp_path / "split.log").read_text()
    table = (tmp_path / "device_cpu.md").read_text()
    assert "| llama2-32q8kv-d8 | 128 |" in table
    assert "passed" in (tmp_path / "tests.log").read_text() or "deselected" in (tmp_path / "tests.log").read_text()


def test_unknown_argument_is_refused(tmp_path):
    done = _run("--gpu", out=tmp_path)
    assert done.returncode == 2 and "usage: bash bench/gpu_check.sh" in done.stderr
