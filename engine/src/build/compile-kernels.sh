#!/usr/bin/env bash
# Build-time check of the CUDA kernel sources: where nvcc exists, every kernels/*.cu must compile to PTX for
# sm_90, so a kernel with a syntax error fails the build even on a machine without a GPU. At run time the same
# sources are compiled by NVRTC for the actual device.
set -euo pipefail
src="$1"; out="$2"
NVCC=$(command -v nvcc || true)
for c in "${CUDA_HOME:-}/bin/nvcc" /usr/local/cuda/bin/nvcc; do [ -z "$NVCC" ] && [ -x "$c" ] && NVCC="$c"; done
if [ -z "$NVCC" ]; then
  echo "[kernels] nvcc not found: skipping the PTX compile check of $src"
  exit 0
fi
mkdir -p "$out"
for f in "$src"/*.cu; do
  "$NVCC" -ptx -arch=sm_90 --std=c++17 -I"$src" -o "$out/$(basename "${f%.cu}").ptx" "$f"
  echo "[kernels] $(basename "$f") -> PTX ok"
done
