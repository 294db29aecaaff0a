#!/usr/bin/env bash
# Everything that needs a GPU, checked and timed in one call (for a lent GPU machine; nothing is installed).
# Usage, from the repository root: bash benchmarks/gpu_check.sh [OUT_DIR]
# Prints: the GPU tests (kernel vs registry, torch CUDA fp16 / CUDA graphs), the fused-kernel table, the
# pipeline and backend tables on CUDA. Each step's output also goes to OUT_DIR (default: $OUT or /tmp/gpu_check).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp/gpu_check}}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py="${PYTHON:-python3}"
status=0
step() {
    local name="$1"; shift
    echo "=== $name: $*"
    "$@" 2>&1 | tee "$out/$name.txt"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || { echo "=== $name FAILED (exit $rc)"; status=1; }
}
step environment "$py" -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))"
step gpu_tests "$py" -m pytest -q -p no:cacheprovider tests/test_fused_kernel.py tests/test_runtimes.py -k "gpu or cuda or nvrtc or nvcc"
step fused_scores "$py" benchmarks/fused_scores.py
step pipeline_cuda "$py" benchmarks/pipeline.py --device cuda --presets tiny vits14 vitb14_reg --frames 30
step backends_cuda "$py" benchmarks/backends.py --devices cuda --presets tiny vits14 vitb14_reg --runs 30
exit $status
