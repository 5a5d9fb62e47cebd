"""A resumable ``attribute_dataset`` run that the kill test SIGKILLs (see test_atomic_files.py).

Started once; it imports attnscope and loads the induction organism, then forks one run per line read from stdin
and prints ``status N`` when the run has ended:
- ``rewrite``: the run SIGKILLs itself inside the resume's rewrite of the rows file (after the file was opened for
  writing, before its content is written);
- ``at SECONDS``: this process SIGKILLs the run after SECONDS if it is still running (its own child, not yet reaped);
- ``finish``: the run ends by itself.
Writes of the rows file (not appends) go through a slow disk that sleeps before each write, so that a kill at a
random moment lands inside the rewrite too.
"""

from __future__ import annotations

import builtins
import io
import os
import signal
import sys
import time

import torch

torch.set_num_threads(1)  # no thread pool before fork

import attnscope as ats  # noqa: E402
from attnscope.organisms import load  # noqa: E402

SLOW_S = 0.15
TEXTS = [" ".join(f"t{(7 * i + j) % 120}" for j in range(3 + i % 6)) for i in range(24)]


class _SlowFile:
    def __init__(self, f) -> None:
        self._f = f

    def write(self, data):
        if _KILL_IN_REWRITE:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(SLOW_S)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


_open = builtins.open
_KILL_IN_REWRITE = False


def _slow_open(file, mode="r", *args, **kwargs):
    f = _open(file, mode, *args, **kwargs)
    if "rows.jsonl" in os.fspath(file) and "w" in mode:
        return _SlowFile(f)
    return f


def _wait(pid: int, kill_after: float | None) -> int:
    """The run's wait status; with ``kill_after``, SIGKILL it then if it has not ended (before it is reaped, the
    pid cannot belong to another process)."""
    if kill_after is not None:
        deadline = time.monotonic() + kill_after
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            time.sleep(0.005)
        os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


def main() -> None:
    out = sys.argv[1]
    model, tok = load("induction")
    builtins.open = io.open = _slow_open
    print("ready", flush=True)
    global _KILL_IN_REWRITE
    for line in sys.stdin:
        command, *arg = line.split()
        _KILL_IN_REWRITE = command == "rewrite"
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                ats.attribute_dataset(model, tok, TEXTS, method="saliency", out=out, batch_size=3, progress=False)
            except BaseException as err:  # noqa: BLE001
                print(f"error {type(err).__name__}: {err}", flush=True)
                code = 1
            os._exit(code)
        print(f"status {_wait(pid, float(arg[0]) if command == 'at' else None)}", flush=True)

if __name__ == "__main__":
    main()
