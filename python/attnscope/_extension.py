"""Loads the C++ extension ``attnscope._C`` after checking it was built against the running torch."""

from __future__ import annotations

import torch

REBUILD_HINT = "pip install --no-build-isolation --force-reinstall -c constraints.txt .  (or `make build` in a checkout)"


def _load():
    try:
        from . import _build_info
    except ImportError as exc:  # the package was imported from a source tree that was never built
        raise ImportError(
            "attnscope's C++ extension is not built. Build it against your torch with: " + REBUILD_HINT
        ) from exc
    running = torch.__version__
    if running != _build_info.TORCH_VERSION:
        raise ImportError(
            f"attnscope was built against torch {_build_info.TORCH_VERSION} but torch {running} is running; "
            f"the C++ extension only works with the torch it was built with. Rebuild it with: {REBUILD_HINT}"
        )
    from . import _C  # registers torch.ops.attnscope.*

    return _C, _build_info


_C, build_info = _load()
