#!/usr/bin/env bash
# The GPU check of kdlib's fold-batched trainer (issue 15): one short run on a machine with a GPU.
#
#   benchmarks/gpu_check.sh                 # on the GPU machine: device tests, one batched unit, timings
#   benchmarks/gpu_check.sh --cpu           # the same steps on the CPU at smoke sizes (checks this script)
#
# The GPU machine may have its own CUDA PyTorch (any version kdlib allows, torch>=2.6,<3) and no
# network. This script uses that PyTorch ($PYTHON, default python3) as it is, and installs only the
# pure-Python packages kdlib needs that are missing there, from wheels carried beside it
# (benchmarks/wheels/, filled on a machine with network by `make gpu-wheels`), with
# pip --no-index --find-links into a private folder: nothing is downloaded, nothing of the
# machine's Python is changed. kdlib itself runs from this checkout (PYTHONPATH), not installed.
#
# Steps (about 3-5 minutes on a GPU; it stops at 8 minutes in any case):
#   1. pytest -m gpu: the device tests (fold-batched on the device vs the CPU, mixed precision)
#   2. benchmarks/bench_batched.py --check: a teacher epoch sequential vs batched (amp off/on),
#      one fold-batched unit (9 methods x 5 folds), a paper-protocol subset, extrapolated
# Results: benchmarks/results/gpu_check.{md,csv} and gpu_check_tests.txt (or $OUT_DIR).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
PY="${PYTHON:-python3}"
WHEELS="${WHEELS:-$HERE/wheels}"
OUT_DIR="${OUT_DIR:-$HERE/results}"
LIMIT_S="${LIMIT_S:-480}"   # the whole check: 8 minutes
MODE=gpu
[[ "${1:-}" == "--cpu" ]] && MODE=cpu

SITE="$(mktemp -d)/site"
mkdir -p "$SITE" "$OUT_DIR"
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=Agg PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
START=$(date +%s)

"$PY" - <<'EOF'
import sys, torch
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"available: {torch.cuda.is_available()}")
EOF
if [[ "$MODE" == gpu ]] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: torch sees no CUDA device here; run with --cpu to check the script on the CPU" >&2
    exit 2
fi

# kdlib's imports beyond torch/numpy (module:distribution); the missing ones come from $WHEELS
# (scipy, scikit-learn, pandas, matplotlib have compiled parts: a CUDA image usually has them; if not,
# put their wheels for that machine's Python into $WHEELS too)
NEED="scipy:scipy sklearn:scikit-learn pandas:pandas matplotlib:matplotlib yaml:pyyaml mne:mne
      decorator:decorator lazy_loader:lazy_loader packaging:packaging seaborn:seaborn tqdm:tqdm joblib:joblib
      tabulate:tabulate edfio:edfio pytest:pytest,pluggy,iniconfig"
missing=()
for pair in $NEED; do
    dists="${pair#*:}"
    "$PY" -c "import ${pair%%:*}" 2>/dev/null || missing+=(${dists//,/ })
done
if (( ${#missing[@]} )); then
    echo "installing from $WHEELS (no network): ${missing[*]}"
    "$PY" -m pip install --quiet --no-index --find-links "$WHEELS" --target "$SITE" --no-deps "${missing[@]}" || {
        echo "gpu_check: could not install ${missing[*]} from $WHEELS (run 'make gpu-wheels' with network)" >&2
        exit 2; }
fi

left() { echo $(( LIMIT_S - ($(date +%s) - START) )); }
DEVICE=cuda; QUICK=()
if [[ "$MODE" == cpu ]]; then DEVICE=cpu; QUICK=(--quick); fi

cd "$REPO"
KDLIB_TEST_DEVICE="$DEVICE" timeout "$(left)" "$PY" -m pytest -m gpu -q -p no:cacheprovider tests/test_batched.py \
    2>&1 | tee "$OUT_DIR/gpu_check_tests.txt"
timeout "$(left)" "$PY" benchmarks/bench_batched.py --check "$DEVICE" "${QUICK[@]}" --out "$OUT_DIR/gpu_check"
echo "gpu_check: done in $(( $(date +%s) - START )) s; results in $OUT_DIR/gpu_check.md"
