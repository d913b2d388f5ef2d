#!/usr/bin/env bash
# Everything the CUDA backend needs a GPU for, in one go (one device call): the GPU test suites, the same
# suites under compute-sanitizer memcheck, the HF transformers oracle on the four presets, the
# benchmark with HF's side, the benchmark again on the mma.sync attention kernel (ablation), and a per-op
# profile pass (BLOCKKV_CUDA_PROFILE=1). Logs and JSON go to OUTDIR; a summary is printed last.
#
# STEPS may also name attnbench (the kernel-only timings of blockkv_attn_bench) and sdpabench (torch's
# fused attention backends on the same cases).
#
# Usage (on the GPU host, from the repository root, after `source PACK/env.sh` puts blockkv and
# blockkv_tests on PATH):  tests/oracle/gpu_run.sh OUTDIR [BENCH_ARGS...]
set -uo pipefail
OUT=${1:?usage: gpu_run.sh OUTDIR [BENCH_ARGS...]}
shift
mkdir -p "$OUT"
export PATH="$PATH:/usr/local/cuda/bin"
HERE=$(cd "$(dirname "$0")" && pwd)
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
# STEPS (environment) picks a subset, e.g. STEPS="tests memcheck oracle" then STEPS="bench ablation profile"
# in a second device call when one call's time limit is too short for all of them.
STEPS=${STEPS:-tests memcheck oracle bench ablation profile}
has() { [[ " $STEPS " == *" $1 "* ]]; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >"$OUT/gpu.txt" 2>&1
has tests && step tests 300 env BLOCKKV_CLI="$(command -v blockkv)" blockkv_tests --run_test=cuda_ops,cuda_runtime --log_level=test_suite --report_level=short
has memcheck && step memcheck 300 env BLOCKKV_CLI="$(command -v blockkv)" compute-sanitizer --tool memcheck --error-exitcode 9 blockkv_tests \
  --run_test=cuda_ops,cuda_runtime --report_level=short
if has oracle; then
  ORACLE_DIR=$(mktemp -d)  # models and logits stay out of OUTDIR
  step oracle 420 "$HERE/gpu_oracle.sh" "$(command -v blockkv)" "$ORACLE_DIR"
  cp "$ORACLE_DIR/gpu_oracle.json" "$ORACLE_DIR/trained/train.json" "$OUT/" 2>/dev/null
fi
has bench && step bench 420 blockkv bench --hf-script "$HERE/hf_bench.py" --json "$OUT/bench.json" "$@"
# The same benchmark with the pre-Hopper attention kernel everywhere (BLOCKKV_ATTN_KERNEL=mma), no HF side:
# what the wgmma kernel is worth.
has ablation && step ablation 200 env BLOCKKV_ATTN_KERNEL=mma blockkv bench --no-store-bench --json "$OUT/bench_mma.json" "$@"
# The attention kernels alone, per layer call (docs/cuda.md, "Attention"), when blockkv_attn_bench is on PATH.
has attnbench && step attnbench 120 blockkv_attn_bench --json "$OUT/attn_bench.json"
# torch's cuDNN and FlashAttention-2 backends on the same cases (tests/oracle/sdpa_bench.py).
has sdpabench && step sdpabench 120 python3 "$HERE/sdpa_bench.py" --json "$OUT/sdpa_bench.json"
# Per-op CUDA-event totals of each eager forward pass (diagnostics; timings inflated by the events).
has profile && step profile 90 env BLOCKKV_CUDA_PROFILE=1 blockkv bench --no-store-bench --lengths 512,32768 --repeats 1 --decode-tokens 2
echo "== gpu"; cat "$OUT/gpu.txt"
has tests && { echo "== tests"; grep -E "failure|error|passed|skipped|Test module" "$OUT/tests.log" | tail -15; }
has memcheck && { echo "== memcheck"; grep -E "ERROR SUMMARY|failure|passed" "$OUT/memcheck.log" | tail -5; }
has oracle && { echo "== oracle"; tail -10 "$OUT/oracle.log"; }
has bench && { echo "== bench"; tail -12 "$OUT/bench.log"; }
has ablation && { echo "== ablation (mma.sync attention)"; tail -8 "$OUT/ablation.log"; }
has attnbench && { echo "== attnbench"; cat "$OUT/attnbench.log"; }
has sdpabench && { echo "== sdpabench"; tail -8 "$OUT/sdpabench.log"; }
has profile && { echo "== profile"; grep -E "cuda_profile" "$OUT/profile.log" | sort | uniq -c | sort -rn | head -12; }
echo "== steps"; printf '%s\n' "${summary[@]}"
