"""The build refuses a torch other than the one it was compiled against."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_import_refuses_a_different_torch():
    code = textwrap.dedent(
        """
        import torch
        torch.__version__ = "9.9.9"
        try:
            import attnscope
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("import attnscope accepted torch 9.9.9")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
    message = out.stdout
    assert "built against torch 2.13.0" in message and "torch 9.9.9 is running" in message
    assert "pip install --no-build-isolation" in message


def test_show_config_prints_versions(capsys):
    import attnscope

    attnscope.show_config()
    printed = capsys.readouterr().out
    assert "torch (built against)" in printed and "eigen" in printed and "compiler" in printed


def test_ops_are_compiled_with_openmp():
    # at::parallel_for runs every task on the calling thread unless the caller is compiled with -fopenmp; the ops
    # were single-threaded until issue 25 noticed. The core reports the _OPENMP it was compiled with.
    import attnscope
    from attnscope import _C

    assert dict(_C.build_info())["core_openmp"] != "off"
    assert attnscope.config()["attnscope ops threaded (OpenMP)"].isdigit()


def test_public_names_are_not_shadowed_by_submodules():
    code = (
        "import attnscope as ats, attnscope.api, attnscope.capturing, attnscope.environment, attnscope.analysis\n"
        "assert isinstance(ats.capture, type), ats.capture\n"
        "assert callable(ats.config) and callable(ats.rollout) and callable(ats.capture_attention)\n"
        "import sys; print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_import_does_not_load_torch():
    out = subprocess.run([sys.executable, "-c", "import sys, attnscope; print('torch' in sys.modules)"],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
