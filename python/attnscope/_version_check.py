"""The extension only works with the torch it was built against: refuse any other at import time."""

from __future__ import annotations

import sys

REBUILD_HINT = "pip install --no-build-isolation --force-reinstall -c constraints.txt .  (or `make build` in a checkout)"


def running_torch_version() -> str | None:
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "__version__"):
        return str(torch.__version__)
    from importlib import metadata

    try:  # read without importing torch (keeps `attnscope --help` fast)
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def check_torch_version() -> None:
    try:
        from . import _build_info
    except ImportError as exc:  # imported from a source tree that was never built
        raise ImportError("attnscope's C++ extension is not built. Build it against your torch with: " + REBUILD_HINT) from exc
    running = running_torch_version()
    if running is None:
        raise ImportError(f"attnscope needs torch {_build_info.TORCH_VERSION} (the version it was built against); "
                          "torch is not installed")
    if running != _build_info.TORCH_VERSION:
        raise ImportError(
            f"attnscope was built against torch {_build_info.TORCH_VERSION} but torch {running} is running; "
            f"the C++ extension only works with the torch it was built with. Rebuild it with: {REBUILD_HINT}"
        )
