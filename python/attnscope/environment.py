"""``attnscope.show_config()``: what the extension was built with and what is running."""

from __future__ import annotations

import platform

import torch

from ._extension import _C, build_info


def config() -> dict[str, str]:
    """Build and runtime facts as a dict (torch built against and running, compiler, threads, Eigen, the
    instruction set of the attention kernels)."""
    from . import __version__

    native = dict(_C.build_info())
    return {
        "attnscope": __version__,
        "python": platform.python_version(),
        "torch (built against)": build_info.TORCH_VERSION,
        "torch (running)": torch.__version__,
        "compiler": native.get("compiler", build_info.CXX_COMPILER),
        "build type": build_info.BUILD_TYPE,
        "eigen": native.get("eigen_version", build_info.EIGEN_VERSION),
        "threads (torch.get_num_threads)": str(torch.get_num_threads()),
        "cuda available": str(torch.cuda.is_available()),
        "parallel backend": _parallel_backend(native.get("parallel_backend", "")),
        # "off" would mean every attnscope op runs on one thread whatever torch.get_num_threads() says
        "attnscope ops threaded (OpenMP)": native.get("core_openmp", "unknown"),
        "attention kernels": native.get("attention_kernels", "unknown"),
    }


def _parallel_backend(info: str) -> str:
    for line in info.splitlines():
        if line.startswith("ATen parallel backend:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def show_config() -> None:
    """Print :func:`config` as an aligned table."""
    rows = config()
    width = max(len(key) for key in rows)
    for key, value in rows.items():
        print(f"{key:<{width}}  {value}")
