#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each for a bounded time from its seed
# corpus (tests/fuzz/corpus/<target>), in a scratch copy so the repository's corpus stays as committed.
# Usage: .ci/fuzz.sh [SECONDS_PER_TARGET]   (default 30). Prints one line per target; exits non-zero on a
# finding (the crashing input is kept in build-fuzz/findings/).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
bash .ci/setup.sh
if ! command -v clang++ >/dev/null || ! dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null | grep -q "ok installed"; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends clang libclang-rt-14-dev
fi
targets=(tensor_decode safetensors block_import model_config prompt block_meta weight_index tokenizer_json tokenize
         chat_template)
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DBLOCKKV_ENABLE_CUDA=OFF -DBLOCKKV_SANITIZE=fuzzer \
  -DBLOCKKV_FUZZ=ON -DBUILD_TESTING=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]/#/fuzz_}"
mkdir -p build-fuzz/findings
status=0
printf '%-16s %12s %10s %s\n' target executions corpus result
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  cp -r "tests/fuzz/corpus/$t/." "$work/"
  log=build-fuzz/fuzz_$t.log
  if build-fuzz/tests/fuzz/fuzz_$t -max_total_time="$secs" -print_final_stats=1 -artifact_prefix=build-fuzz/findings/$t- \
      -rss_limit_mb=2048 "$work" >"$log" 2>&1; then
    result=ok
  else
    result="FINDING (see $log)"
    status=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
  printf '%-16s %12s %10s %s\n' "$t" "${execs:-?}" "$(ls "$work" | wc -l)" "$result"
  rm -rf "$work"
done
exit $status
