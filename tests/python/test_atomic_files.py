"""Files attnscope writes are replaced atomically (issue #22): the helper, and a kill test of the resumable run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def test_write_text_replaces_the_file_whole(tmp_path):
    from attnscope.atomic_files import write_text

    path = tmp_path / "sub" / "a.txt"
    write_text(path, "old\n")
    write_text(path, "new\n")
    assert path.read_text() == "new\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]  # no temporary file left


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    from attnscope.atomic_files import replacing, write_text

    path = tmp_path / "a.txt"
    write_text(path, "old\n")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with replacing(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk on fire")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_saved_results_and_views_go_through_the_helper(tmp_path, monkeypatch):
    import torch

    import attnscope as ats

    replaced = []
    real = os.replace

    def spy(src, dst):
        replaced.append((Path(src).name.startswith(f".{Path(dst).name}.tmp-"), Path(dst).name))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    res = ats.AttentionResult(weights=torch.rand(1, 1, 2, 3, 3), layers=[0])
    res.save(tmp_path / "r")
    res.save_html(tmp_path / "v.html")
    assert replaced == [(True, "tensors.safetensors"), (True, "result.json"), (True, "v.html")]


def _rows(path: Path) -> list[int]:
    """Indices of the complete rows in the file (a line cut by a kill is not a row)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line)["index"])
        except json.JSONDecodeError:
            continue
    return out


def test_killing_the_resumable_run_20_times_loses_and_duplicates_no_row(tmp_path):
    """SIGKILL the resumable run 20 times (10 inside the resume's rewrite, 10 at random moments), then let it
    finish: after every kill the finished rows are all still there, each once."""
    out = tmp_path / "run"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    worker = subprocess.Popen([sys.executable, str(HERE / "resumable_worker.py"), str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env, cwd=HERE)
    rng = random.Random(22)
    kept: set[int] = set()
    inside_rewrite = 0
    try:
        assert worker.stdout.readline().strip() == "ready"
        for round_ in range(21):
            if round_ == 20:
                command = "finish"
            elif round_ % 2 == 0:
                command = "rewrite"  # killed inside the resume's rewrite of the rows file
            else:
                command = f"at {rng.uniform(0.0, 0.5):.3f}"  # killed at a random moment of the run
            worker.stdin.write(command + "\n")
            worker.stdin.flush()
            line = worker.stdout.readline().split()
            assert line and line[0] == "status", line
            killed = int(line[1]) == signal.SIGKILL  # os.waitpid's status of a process killed by a signal
            assert killed or command != "rewrite"
            inside_rewrite += killed and command == "rewrite"
            rows = _rows(out / "rows.jsonl")
            assert len(rows) == len(set(rows)), f"round {round_} ({command}): a row is duplicated"
            assert kept <= set(rows), f"round {round_} ({command}): rows {sorted(kept - set(rows))} were lost"
            kept = set(rows)
    finally:
        worker.stdin.close()
        worker.wait(timeout=30)
    assert inside_rewrite == 10
    assert sorted(_rows(out / "rows.jsonl")) == list(range(24))
