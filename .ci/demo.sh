#!/usr/bin/env bash
# The main job on a fresh machine: install, build, and run blockkv's end-to-end demo on its embedded
# default (a tiny synthetic model, a few stored passages, one prompt in block mode and full mode).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/build.sh
exec build/tools/blockkv demo "$@"
