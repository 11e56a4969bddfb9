#!/usr/bin/env bash
# Build-time check of the CUDA kernel sources: where nvcc exists, every kernels/*.cu must compile to PTX for
# sm_90 (sm_90a for a source whose defines mark it JT_ARCH_SPECIFIC), so a kernel with a syntax error fails the build even on a machine without a GPU. At run time the same
# sources are compiled by NVRTC for the actual device. Each source is compiled with the defines its launch class
# declares (KernelSource.java), which the build wrote to <defines dir>/<name>.defines (NAME=value lines) before.
# Quiet unless JTUNE_BUILD_VERBOSE=1 (then one line per kernel, nvcc's warnings, and the notice when nvcc is
# missing); a kernel that fails is always reported, with nvcc's messages, and fails the build after all are tried.
# Usage: compile-kernels.sh <kernels dir> <PTX output dir> <defines dir>
set -uo pipefail
src="$1"; out="$2"; defs="$3"
verbose="${JTUNE_BUILD_VERBOSE:-0}"
say() { if [ "$verbose" = 1 ]; then echo "[kernels] $*"; fi; }
NVCC=$(command -v nvcc || true)
for c in "${CUDA_HOME:-}/bin/nvcc" /usr/local/cuda/bin/nvcc; do [ -z "$NVCC" ] && [ -x "$c" ] && NVCC="$c"; done
if [ -z "$NVCC" ]; then
  say "nvcc not found: skipping the PTX compile check of $src"
  exit 0
fi
rm -rf "$out"; mkdir -p "$out" # no PTX of a source that is gone
failed=()
for f in "$src"/*.cu; do
  name=$(basename "$f")
  if [ ! -f "$defs/$name.defines" ]; then
    echo "[kernels] $name: no $defs/$name.defines: its launch class declares no KernelSource (add it to KernelSources.ALL)" >&2
    failed+=("$name"); continue
  fi
  dflags=()
  while IFS= read -r d; do [ -n "$d" ] && dflags+=("-D$d"); done < "$defs/$name.defines"
  # a source marked JT_ARCH_SPECIFIC (KernelSource.ARCH_SPECIFIC: wgmma and other sm_90a-only instructions) compiles
  # for the arch-specific target, in the -gencode form (HOPPER.md: the -arch=sm_90a shorthand may add a plain sm_90 pass)
  arch=(-arch=sm_90)
  grep -q '^JT_ARCH_SPECIFIC=' "$defs/$name.defines" && arch=(-gencode=arch=compute_90a,code=sm_90a)
  if log=$("$NVCC" -ptx "${arch[@]}" --std=c++17 -I"$src" "${dflags[@]}" -o "$out/${name%.cu}.ptx" "$f" 2>&1); then
    say "$name -> PTX ok (${#dflags[@]} defines)"
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
