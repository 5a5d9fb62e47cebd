"""Loads the C++ extension ``attnscope._C`` (registers ``torch.ops.attnscope``) after the torch version check."""

from __future__ import annotations

import torch  # noqa: F401  (libtorch must be loaded before the extension)

from . import _build_info as build_info
from ._version_check import check_torch_version

check_torch_version()

from . import _C  # noqa: E402

__all__ = ["_C", "build_info"]
