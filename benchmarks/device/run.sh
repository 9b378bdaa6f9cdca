#!/usr/bin/env bash
# The one prepared command for a device session (docs/gpu.md): run it from the repository root
# on the device machine, with .whl carried (benchmarks/device/fetch_wheels.sh made it):
#
#     bash benchmarks/device/run.sh
#
# It installs the carried wheels into /tmp/site, then, each under its own time limit so that
# what finished still comes back in $OUT: the GPU tests and the codec benchmark
# (benchmarks/gpu.py -> $OUT/gpu.md; both check GPU bytes == CPU bytes, the max coder's
# level-model chunks included: lossless stacks, single planes at q = 0 and 1) and the INR
# training/decode timing on the synthetic sets
# (benchmarks/inr.py --device cuda -> $OUT/inr.md; --model grid -> $OUT/inr_grid.md).
# Logs: $OUT/*.log. About 10 minutes.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
{ nvidia-smi; python3 -c "import bigcomp, cupy, numba, zarr, dask; print('imports ok', cupy.__version__, numba.__version__)"; } 2>&1 | tee "$OUT/env.log"
timeout "${GPU_BENCH_S:-300}" python3 benchmarks/gpu.py --repeats 5 --out "$OUT/gpu.md" 2>&1 | tee "$OUT/gpu.log"
echo "gpu.py exit status: $?" | tee -a "$OUT/gpu.log"
timeout "${INR_BENCH_S:-120}" python3 benchmarks/inr.py --device cuda --full --only synthetic \
    --ratios 500 --no-peers --out "$OUT/inr.md" 2>&1 | tee "$OUT/inr.log"
echo "inr.py exit status: $?" | tee -a "$OUT/inr.log"
timeout "${GRID_BENCH_S:-110}" python3 benchmarks/inr.py --device cuda --full --only light-sheet \
    --ratios 500 --no-peers --model grid --out "$OUT/inr_grid.md" 2>&1 | tee "$OUT/inr_grid.log"
echo "inr.py --model grid exit status: $?" | tee -a "$OUT/inr_grid.log"
