#!/usr/bin/env bash
# Configures and builds blockkv into build/ (Release with debug info). CUDA is enabled automatically when
# nvcc is found; set BLOCKKV_ENABLE_CUDA=OFF to skip it. Extra arguments go to cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
cmake -S . -B build -G Ninja -DBLOCKKV_ENABLE_CUDA="${BLOCKKV_ENABLE_CUDA:-ON}" "$@" >/dev/null
cmake --build build -j"$(nproc)"
