#!/usr/bin/env bash
# A shorter GPU pass than gpu_run.sh, for an iteration inside a small device budget: the GPU test suites,
# the same suites under compute-sanitizer memcheck, blockkv's own benchmark (no HF side), and one
# per-op profile pass (BLOCKKV_CUDA_PROFILE=1: CUDA-event totals per op of each eager forward pass).
# Logs go to OUTDIR; a summary is printed last.
#
# Usage (on the GPU host, from the repository root, after `source PACK/env.sh`):
#   tests/oracle/gpu_quick.sh OUTDIR [BENCH_ARGS...]
set -uo pipefail
OUT=${1:?usage: gpu_quick.sh OUTDIR [BENCH_ARGS...]}
shift
mkdir -p "$OUT"
export PATH="$PATH:/usr/local/cuda/bin"
summary=()
step() {  # step NAME TIMEOUT_S COMMAND...
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  summary+=("$(printf '%-10s rc=%-3s %4ss' "$name" "$rc" "$((SECONDS - start))")")
  return $rc
}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >"$OUT/gpu.txt" 2>&1
step tests 200 env BLOCKKV_CLI="$(command -v blockkv)" blockkv_tests --run_test=cuda_ops,cuda_runtime --log_level=test_suite --report_level=short
step memcheck 240 env BLOCKKV_CLI="$(command -v blockkv)" compute-sanitizer --tool memcheck --error-exitcode 9 blockkv_tests \
  --run_test=cuda_ops,cuda_runtime --report_level=short
step bench 200 blockkv bench --json "$OUT/bench.json" "$@"
step profile 90 env BLOCKKV_CUDA_PROFILE=1 blockkv bench --lengths 512,32768 --repeats 1 --decode-tokens 2
echo "== gpu"; cat "$OUT/gpu.txt"
echo "== tests"; grep -E "failure|error|passed|skipped|Test module" "$OUT/tests.log" | tail -15
echo "== memcheck"; grep -E "ERROR SUMMARY|failure|passed" "$OUT/memcheck.log" | tail -5
echo "== bench"; tail -12 "$OUT/bench.log"
echo "== profile"; grep -E "cuda_profile" "$OUT/profile.log" | sort | uniq -c | sort -rn | head -12
echo "== steps"; printf '%s\n' "${summary[@]}"
