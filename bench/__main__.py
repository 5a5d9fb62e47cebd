"""``make bench``: run every benchmark, then rebuild bench/RESULTS.md from bench/results/*.md."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITE = ["capture", "flow", "ig", "head_stats", "generation", "perturbation", "context_mixing", "lens", "activations",
         "seq2seq", "quality", "device", "scale", "patching"]
# Extra tables that a bench writes with other settings (e.g. `python -m bench.ig --lengths 512 ...`).
EXTRA = {"ig": ["ig_512"]}


def assemble() -> None:
    parts = [(HERE / "RESULTS.header.md").read_text().rstrip() + "\n"]
    for name in SUITE:
        for part in [name, *EXTRA.get(name, [])]:
            table = HERE / "results" / f"{part}.md"
            if table.exists():
                parts.append(f"## {part}\n\n{table.read_text().strip()}\n")
    (HERE / "RESULTS.md").write_text("\n".join(parts))
    print(f"wrote {HERE / 'RESULTS.md'}")


def main() -> None:
    only = sys.argv[1:] or SUITE
    for name in only:
        if importlib.util.find_spec(f"bench.{name}") is None:
            print(f"bench.{name}: not written yet, skipped")
            continue
        print(f"=== bench.{name}", flush=True)
        subprocess.run([sys.executable, "-m", f"bench.{name}"], check=True)
    assemble()


if __name__ == "__main__":
    main()
