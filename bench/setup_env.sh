#!/usr/bin/env bash
# The bench-only environment bench/.env: peers that would drag in CUDA packages or loose torch ranges (inseq 0.7.1
# lists ten nvidia-*-cu11 wheels among its dependencies; TransformerLens 4.3.0 wants wandb, torch >= 2.6 and
# CUDA-pulling extras) live here, never in .venv, and `make test` needs none of it.
#
# bench/.env is a venv whose site-packages also see .venv's (torch 2.13.0 CPU, transformers, captum, attnscope)
# through a .pth file; `--system-site-packages` would see the base interpreter's, not .venv's. Every pip call is
# --no-deps under constraints.txt, so pip cannot pull torch or CUDA packages; the few pure-Python modules inseq and
# TransformerLens import that .venv lacks are listed here by hand. Idempotent: a second run only checks the import.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
ENV="$ROOT/bench/.env"
PY="$ENV/bin/python"

if [ ! -x "$PY" ]; then
    "$VENV/bin/python" -c "import sys; print(sys.base_prefix)" >/dev/null
    base="$("$VENV/bin/python" -c 'import sys, os; print(os.path.join(sys.base_prefix, "bin", "python3"))')"
    "$base" -m venv "$ENV"
fi
site="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
venv_site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# .pth lines run `import` lines too: the editable attnscope install in .venv registers itself through one, so
# addsitedir (which processes .venv's own .pth files) is used rather than a bare path.
echo "import site; site.addsitedir('$venv_site')" > "$site/_attnscope_venv.pth"

PIP=("$PY" -m pip install --quiet --disable-pip-version-check --no-deps -c "$ROOT/constraints.txt")
if ! "$PY" -c "import inseq" 2>/dev/null; then
    # inseq 0.7.1 imports jaxtyping (which imports wadler_lindig), typeguard <= 2.13.3 and treescope at import time.
    "${PIP[@]}" "inseq==0.7.1" "jaxtyping" "wadler_lindig" "typeguard==2.13.3" "treescope"
fi
if ! "$PY" -c "import transformer_lens.model_bridge, transformer_lens.tools.analysis" 2>/dev/null; then
    # TransformerLens 4.3.0 (PyPI transformer-lens) lists torch, wandb and CUDA-pulling extras among its
    # dependencies; at import time it needs einops, jaxtyping, beartype, fancy_einsum, accelerate and datasets
    # (datasets: pyarrow, dill, xxhash, multiprocess). It does not import typeguard, so inseq's pin stays.
    "${PIP[@]}" "transformer-lens==4.3.0" "einops" "jaxtyping" "wadler_lindig" "beartype" "fancy_einsum" \
        "accelerate" "datasets" "pyarrow" "dill" "xxhash" "multiprocess"
fi

# ferret-xai 0.4.2 declares transformers<5, captum<0.8, numpy<2 and ~23 packages (spaCy, shap, lime, OpenCV, ...)
# for its datasets and explainers; bench/quality.py imports only its evaluators (numpy, scipy, scikit-learn, torch,
# transformers, tqdm: all in .venv), so the wheel alone, --no-deps.
if ! "$PY" -c "import importlib.util as u; assert u.find_spec('ferret')" 2>/dev/null; then
    "${PIP[@]}" "ferret-xai==0.4.2"
fi
"$PY" -c "import torch, inseq; assert torch.__version__.startswith('2.13.0'), torch.__version__"
"$PY" -c "import torch, transformer_lens.model_bridge; assert torch.__version__.startswith('2.13.0'), torch.__version__"
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
echo "bench/.env: inseq $(version inseq), transformer-lens $(version transformer-lens), ferret-xai $(version ferret-xai) ready"
