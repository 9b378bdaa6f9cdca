#!/usr/bin/env bash
# Download, on the dev machine, the wheels the device machine lacks (it has no network).
#
# The H200 image has Python 3.12 with numpy, numba, numba-cuda, CuPy (CUDA 13), torch, xarray,
# psutil, rich, typer, pytest and hypothesis, but not zarr, numcodecs, dask, distributed,
# crc32c or nvCOMP (see /work/.library/device/KINDS.md). This fetches exactly those, without
# their dependencies (the image has the rest), into .whl/ at the repository root (ignored by
# git; about 38 MB: pass it in the device tool's `carry`). Versions are the ones checked
# against the image's package list; bump them together.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
    numcodecs==0.17.1 zarr==3.4.2 donfig==0.8.1.post1 google-crc32c==1.9.0 msgspec==0.22.0 \
    crc32c==2.9.post0 dask==2026.8.0 distributed==2026.8.0 partd==1.4.2 locket==1.0.0 \
    tblib==3.2.2 zict==3.0.0 tornado==6.6.1 \
    nvidia-nvcomp-cu13==6.0.0.12 nvidia-libnvcomp-cu13==6.0.0.12
du -sh .whl
