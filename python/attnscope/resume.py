"""Resumable output folders (``attribute_dataset(out=)``, ``benchmark(out=)``, the CLI's ``--out``).

A folder holds ``meta.json`` (the run's settings and whether the run completed) and ``rows.jsonl`` (one finished
item per line). Only a completed run pins a folder to its settings: rerunning with the same settings resumes (or
reuses) the rows; a completed run with other settings is refused; an unfinished run with other settings (one that
failed, e.g. on a wrong target) is replaced by the corrected run, with a warning when finished rows are dropped.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from .atomic_files import write_text

__all__ = ["META", "ROWS", "finish", "reusable", "start"]

META = "meta.json"
ROWS = "rows.jsonl"


def _saved(out: Path) -> tuple[dict, bool]:
    """The saved settings and whether that run completed (a meta.json without the flag predates it: completed)."""
    try:
        saved = json.loads((out / META).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}, False
    if not isinstance(saved, dict):
        return {}, False
    complete = bool(saved.pop("complete", True))
    return saved, complete


def reusable(out: Path | None, settings: dict, what: str) -> bool:
    """Whether ``out``'s rows belong to a run with ``settings`` (so they are kept and skipped).

    Raises ValueError when a completed run with other settings pins the folder."""
    if out is None or not (out / ROWS).exists():
        return False
    saved, complete = _saved(out)
    if saved == settings:
        return True
    if complete and saved:
        raise ValueError(f"{out} holds a completed {what} with other settings ({saved}); use another out= folder, or "
                         "remove this one to start afresh")
    rows = sum(1 for line in (out / ROWS).read_text(encoding="utf-8").splitlines() if line.strip())
    if rows:
        warnings.warn(f"{out} held an unfinished {what} with other settings ({saved}); its {rows} finished rows are "
                      "dropped and this run starts afresh", stacklevel=3)
    return False


def start(out: Path, settings: dict, rows: list[str]) -> None:
    """Pin nothing yet: write the settings as unfinished and keep only the given whole rows."""
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / META, json.dumps({**settings, "complete": False}) + "\n")
    # Atomically: a kill during this rewrite leaves the previous file whole (issue #22).
    write_text(out / ROWS, "".join(rows))


def finish(out: Path | None, settings: dict) -> None:
    """The run completed: its settings now pin the folder."""
    if out is not None:
        write_text(out / META, json.dumps({**settings, "complete": True}) + "\n")
