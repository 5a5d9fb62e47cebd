"""The attention row kernels: tiles and key panels at every edge, the layer output P·V computed from the captured
probabilities, and every instruction-set build (AVX-512, AVX2 and the baseline x86-64 one) against plain float64
PyTorch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from test_attention_probs_op import reference

from attnscope import _C
from attnscope.ops import attention_probs, attention_probs_reduced

CASES = {
    "plain": dict(),
    "causal": dict(is_causal=True),
    "window": dict(is_causal=True, window=5),
    "everything": dict(is_causal=True, window=9, softcap=2.0, sinks=True, mask=True),
}
# (q_len, k_len, head_dim): one row and one key; rows not a multiple of the 6-row tile and keys not a multiple of the
# 16-key panel; exact tiles and panels; a head_dim under one vector.
SHAPES = [(1, 1, 8), (7, 17, 32), (13, 37, 24), (12, 32, 64), (9, 100, 3)]


def _inputs(case, q_len, k_len, dim, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    opts = dict(CASES[case])
    q = torch.randn(2, 6, q_len, dim, generator=g, dtype=dtype)
    k = torch.randn(2, 3, k_len, dim, generator=g, dtype=dtype)
    if opts.pop("sinks", False):
        opts["sinks"] = torch.randn(6, generator=g, dtype=dtype)
    if opts.pop("mask", False):
        opts["mask"] = torch.rand(2, 1, q_len, k_len, generator=g) > 0.3
    return q, k, opts


def _ref_output(q, k, v, opts, scale):
    probs = reference(q, k, opts.get("mask"), scale=scale, **{n: x for n, x in opts.items() if n != "mask"})
    values = v.double().repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    return (probs @ values).transpose(1, 2)  # [batch, q, heads, v_dim]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("case", CASES)
def test_probs_match_float64_reference_and_every_chunk_is_identical(case, shape):
    q, k, opts = _inputs(case, *shape)
    whole = attention_probs(q, k, scale=0.3, **opts)
    want = reference(q, k, opts.get("mask"), scale=0.3, **{n: x for n, x in opts.items() if n != "mask"})
    assert (whole.double() - want).abs().max().item() <= 1e-6
    for chunk in {1, 5, 6, 7, shape[0]}:
        assert torch.equal(attention_probs(q, k, scale=0.3, query_chunk=chunk, **opts), whole)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("heads", [None, [4, 1]], ids=["all", "selected"])
@pytest.mark.parametrize("case", CASES)
def test_output_is_probs_times_values(case, heads, dtype):
    q, k, opts = _inputs(case, 13, 37, 24, dtype)
    v = torch.randn(2, 3, 37, 40, dtype=dtype)  # v_dim 40: two full panels and a partial one
    got = attention_probs_reduced(q, k, scale=0.3, heads=heads, reduce="mean", value=v, **opts)
    assert got.output.shape == (2, 13, 6, 40)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert (got.output.double() - _ref_output(q, k, v, opts, 0.3)).abs().max().item() <= tol
    # The value changes nothing else, and the output is the same for every chunk size.
    without = attention_probs_reduced(q, k, scale=0.3, heads=heads, reduce="mean", **opts)
    assert without.output.numel() == 0 and torch.equal(got.weights, without.weights)
    for chunk in (1, 4, 6, 13):
        again = attention_probs_reduced(q, k, scale=0.3, heads=heads, reduce="mean", value=v, query_chunk=chunk, **opts)
        assert torch.equal(again.output, got.output)


def test_bad_value_is_refused():
    q, k, _ = _inputs("plain", 4, 5, 8)
    with pytest.raises(ValueError, match=r"value must be \[batch=2, kv_heads=3, k_len=5, v_dim\], got shape \[2, 6, 5, 8\]"):
        attention_probs_reduced(q, k, value=torch.randn(2, 6, 5, 8))
    with pytest.raises(ValueError, match=r"k_len=5, v_dim\], got shape \[2, 3, 4, 8\]"):
        attention_probs_reduced(q, k, value=torch.randn(2, 3, 4, 8))
    with pytest.raises(TypeError, match="value must be float16, bfloat16, float32 or float64, got Long"):
        attention_probs_reduced(q, k, value=torch.ones(2, 3, 5, 8, dtype=torch.long))


def test_opcheck_with_value():
    q, k, _ = _inputs("causal", 7, 9, 16)
    op = torch.ops.attnscope.attention_probs_reduced.default
    torch.library.opcheck(op, (q, k, None, 0.25, True, 0, 0.0, None, 3, [0, 2], "mean", True, 2, True,
                               torch.randn(2, 3, 9, 20)), test_utils=("test_schema", "test_faketensor"))


def _cpu_flags() -> set[str]:
    flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    return set(flags.split())


# The CPU flags each build needs (ATen's AVX512 capability needs the same four AVX-512 subsets).
_NEEDS = {"AVX512": {"avx512f", "avx512bw", "avx512vl", "avx512dq", "fma"}, "AVX2": {"avx2", "fma"}}


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs /proc/cpuinfo")
def test_kernels_use_the_widest_build_the_cpu_and_aten_allow():
    aten = torch.backends.cpu.get_cpu_capability()  # honours ATEN_CPU_CAPABILITY
    allowed = {"AVX512": ["AVX512", "AVX2"], "AVX2": ["AVX2"]}.get(aten, [])
    want = next((isa for isa in allowed if _NEEDS[isa] <= _cpu_flags()), "DEFAULT")
    assert dict(_C.build_info())["attention_kernels"] == want


_BASELINE_SCRIPT = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, sys.argv[1])
    from test_attention_kernels import CASES, _inputs, _ref_output
    from attnscope import _C
    from attnscope.ops import attention_probs_reduced
    worst = 0.0
    for case in CASES:
        q, k, opts = _inputs(case, 13, 37, 24)
        v = torch.randn(2, 3, 37, 40)
        got = attention_probs_reduced(q, k, scale=0.3, value=v, **opts)
        worst = max(worst, (got.output.double() - _ref_output(q, k, v, opts, 0.3)).abs().max().item())
        for chunk in (1, 5):
            again = attention_probs_reduced(q, k, scale=0.3, value=v, query_chunk=chunk, **opts)
            assert torch.equal(again.weights, got.weights) and torch.equal(again.output, got.output), case
    print(dict(_C.build_info())["attention_kernels"], worst)
""")


@pytest.mark.parametrize("isa", ["DEFAULT", "AVX2"])
def test_narrower_builds_match_the_reference(isa):
    # ATEN_CPU_CAPABILITY lowers ATen's capability and with it attnscope's build (read once per process), so the
    # narrower builds stay tested on a machine that would pick a wider one.
    if isa != "DEFAULT" and not (Path("/proc/cpuinfo").exists() and _NEEDS[isa] <= _cpu_flags()):
        pytest.skip(f"this CPU cannot run the {isa} build")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": isa.lower()}
    out = subprocess.run([sys.executable, "-c", _BASELINE_SCRIPT, str(Path(__file__).parent)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got, worst = out.stdout.split()
    assert got == isa
    assert float(worst) <= 1e-5
