#!/usr/bin/env bash
# Build-time check of the CUDA kernel sources: where nvcc exists, every kernels/*.cu must compile to PTX for
# sm_90, so a kernel with a syntax error fails the build even on a machine without a GPU. At run time the same
# sources are compiled by NVRTC for the actual device.
# Quiet unless JTUNE_BUILD_VERBOSE=1 (then one line per kernel, nvcc's warnings, and the notice when nvcc is
# missing); a kernel that fails is always reported, with nvcc's messages, and fails the build after all are tried.
set -uo pipefail
src="$1"; out="$2"
verbose="${JTUNE_BUILD_VERBOSE:-0}"
say() { if [ "$verbose" = 1 ]; then echo "[kernels] $*"; fi; }
NVCC=$(command -v nvcc || true)
for c in "${CUDA_HOME:-}/bin/nvcc" /usr/local/cuda/bin/nvcc; do [ -z "$NVCC" ] && [ -x "$c" ] && NVCC="$c"; done
if [ -z "$NVCC" ]; then
  say "nvcc not found: skipping the PTX compile check of $src"
  exit 0
fi
mkdir -p "$out"
failed=()
for f in "$src"/*.cu; do
  name=$(basename "$f")
  if log=$("$NVCC" -ptx -arch=sm_90 --std=c++17 -I"$src" -o "$out/${name%.cu}.ptx" "$f" 2>&1); then
    say "$name -> PTX ok"
    if [ "$verbose" = 1 ] && [ -n "$log" ]; then echo "$log"; fi
  else
    echo "[kernels] $name: nvcc failed to compile it to PTX:" >&2
    echo "$log" >&2
    failed+=("$name")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "[kernels] ${#failed[@]} kernel source(s) did not compile: ${failed[*]} (in $src)" >&2
  exit 1
fi
