#!/usr/bin/env bash
# The whole test suite: install, build, run every CTest test (each Boost.Test suite is one CTest test).
# GPU suites skip, saying so, where no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/build.sh
cd build
ctest --output-on-failure -j"$(nproc)" "$@"
