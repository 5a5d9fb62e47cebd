#!/usr/bin/env bash
# bench/gpu_check.sh: the one prepared run for a GPU machine (docs/devices.md, "The GPU check").
#
#   bash bench/gpu_check.sh --fetch     here (network-free: pip's local cache): put the wheels the GPU image lacks
#                                       into bench/gpu_wheels (ignored by git; the device tool carries it)
#   bash bench/gpu_check.sh             on the GPU machine: install those wheels, build attnscope against the
#                                       image's own torch (a CUDA build; the torch==2.13.0 pin is overridden), run
#                                       the device-marked tests, a cuda:0/cpu/disk accelerate split and the
#                                       capture/attribution benchmarks on CUDA; results under $OUT (else build/gpu_check)
#   bash bench/gpu_check.sh --dry-run   here, on the CPU: every step in its CPU form (no wheels, the existing
#                                       build, the same tests, a cpu/disk split, the benchmarks at small sizes), to
#                                       completion; tests/python/test_gpu_check.py runs it
#
# The GPU machine has no network and its own image (torch 2.11 CUDA, Python 3.12, transformers 5.17, accelerate,
# scikit-build-core, pybind11, cmake, ninja, pytest): only Eigen (PyPI cmeel-eigen) must travel. Budget: about 12
# minutes including the machine's start (build ~3 min on 16 cores, tests ~1 min, split ~1 min, benchmarks ~3 min).
# Device tool call:  run(command="bash bench/gpu_check.sh", carry=["bench/gpu_wheels"], timeout_s=600)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODE=gpu
case "${1:-}" in
  "") ;;
  --dry-run) MODE=dry ;;
  --fetch) MODE=fetch ;;
  *) echo "usage: bash bench/gpu_check.sh [--dry-run | --fetch]" >&2; exit 2 ;;
esac
WHEELS="$ROOT/bench/gpu_wheels"
RESULTS="${OUT:-$ROOT/build/gpu_check}"
mkdir -p "$RESULTS"
step() { echo "=== [$(date +%H:%M:%S)] $*"; }
# Wheels for the image's Python 3.12 (pure-Python or header-only: no torch, nothing compiled against it).
WANT=("cmeel-eigen==3.4.1")

if [ "$MODE" = fetch ]; then
  step "fetching ${WANT[*]} into $WHEELS"
  mkdir -p "$WHEELS"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d "$WHEELS" "${WANT[@]}"
  ls -l "$WHEELS"
  exit 0
fi

if [ "$MODE" = gpu ]; then
  PY=python3
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: use --dry-run')"
  step "installing the carried wheels from $WHEELS"
  ls "$WHEELS"/*.whl >/dev/null || { echo "no wheels in $WHEELS: run --fetch here and carry bench/gpu_wheels"; exit 1; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  step "building against the image's torch $("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda)')"
  # Pin override: --no-build-isolation --no-deps build against the installed torch whatever pyproject pins.
  # ATTNSCOPE_BUILD_TESTS=OFF: GoogleTest is not on the image (the C++ tests run on the CPU machine).
  rm -rf build/release
  EIGEN_DIR="$(dirname "$(find /tmp/site -name Eigen3Config.cmake | head -1)")"
  ATTNSCOPE_BUILD_TESTS=OFF CMAKE_BUILD_PARALLEL_LEVEL=16 CMAKE_ARGS="-DEigen3_DIR=$EIGEN_DIR" \
    "$PY" -m pip install -q --no-index --no-build-isolation --no-deps -e . 2>&1 | tee "$RESULTS/build.log" | tail -20
  DEVICE=cuda
  SPLIT="cuda:0,cpu,disk"
  BENCH_ARGS=(--device cuda --lengths 2048 8192)
else
  PY="$ROOT/.venv/bin/python"
  step "dry run: wheels $(printf '%s ' "${WANT[@]}")would be installed from $WHEELS; the existing build is used"
  DEVICE=cpu
  SPLIT="cpu,cpu,disk"
  BENCH_ARGS=(--device cpu --lengths 128 --quick --budget-mib 64)
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

# The three checks run whatever the others give (one GPU run must say as much as it can); the exit status is
# nonzero when any failed.
FAILED=()
step "device-marked tests (pytest -m cuda; skipped without CUDA)"
CUDA_TESTS=$(grep -l "pytest.mark.cuda" tests/python/test_*.py | tr '\n' ' ')
# shellcheck disable=SC2086
"$PY" -m pytest -q -p no:cacheprovider -m cuda $CUDA_TESTS 2>&1 | tee "$RESULTS/tests.log" | tail -15 || FAILED+=(tests)

step "accelerate split $SPLIT against the unsplit model"
"$PY" -m bench.device_split --devices "$SPLIT" 2>&1 | tee "$RESULTS/split.log" || FAILED+=(split)

step "capture and attribution benchmarks on $DEVICE"
"$PY" -m bench.device "${BENCH_ARGS[@]}" --out "$RESULTS/device_$DEVICE.md" 2>&1 | tee "$RESULTS/bench.log" | grep -v "^USDT" \
  || FAILED+=(bench)
if [ ${#FAILED[@]} -gt 0 ]; then
  step "FAILED: ${FAILED[*]} (logs in $RESULTS)"
  exit 1
fi
step "done: results in $RESULTS"
