#!/usr/bin/env bash
# Builds the CPU test suite with sanitizers and runs it: `.ci/sanitize.sh address` (ASan+UBSan) or
# `.ci/sanitize.sh thread` (TSan). CUDA is off in these builds. Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: sanitize.sh address|thread}
shift
bash .ci/setup.sh
dir=build-$kind
cmake -S . -B "$dir" -G Ninja -DBLOCKKV_ENABLE_CUDA=OFF -DBLOCKKV_SANITIZE="$kind" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" -j"$(nproc)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp
# OpenBLAS's own threads are not instrumented; one thread keeps TSan's view complete.
export OPENBLAS_NUM_THREADS=1
cd "$dir"
ctest --output-on-failure -j"$(nproc)" "$@"
