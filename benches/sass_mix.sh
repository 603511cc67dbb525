#!/usr/bin/env bash
# Every kernel compiled to sm_90 CUBIN by NVRTC (tests/nvrtc_compile.rs with CHROMAX_SASS_DIR),
# then benches/sass_mix.py's instruction mix per entry. Needs NVRTC (as .ci/run installs it)
# and a cuobjdump: $CUOBJDUMP, the CUDA toolkit's, or the one Triton's wheel carries.
set -euo pipefail
cd "$(dirname "$0")/.."
NV="${CHROMAX_NVRTC_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chromax/nvrtc-13.0.88}/nvidia/cu13"
export LD_LIBRARY_PATH="$NV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" CHROMAX_CUDA_INCLUDE="$NV/include" CHROMAX_REQUIRE_NVRTC=1
cuobjdump="${CUOBJDUMP:-$(command -v cuobjdump || python3 -c 'import triton, os; print(os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump"))' 2>/dev/null || true)}"
[ -x "$cuobjdump" ] || { echo "sass_mix: no cuobjdump (set CUOBJDUMP, or pip install triton)" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
CHROMAX_SASS_DIR="$dir" cargo test --quiet --test nvrtc_compile every_kernel_goes_through_ptxas >/dev/null 2>&1
python3 benches/sass_mix.py "$cuobjdump" "$dir"/*.cubin
