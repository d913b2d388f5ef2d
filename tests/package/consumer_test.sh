#!/usr/bin/env bash
# The installed package as a user meets it: `cmake --install` the build tree into a fresh prefix, configure
# tests/package/consumer against it with find_package(blockkv CONFIG), build it, run it.
# Usage: consumer_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "${1:?usage: consumer_test.sh BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/blockkv-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
test -f "$work/prefix/lib/cmake/blockkv/blockkvConfig.cmake"
test -f "$work/prefix/include/attention/engine.h"
! test -e "$work/prefix/include/db/block_store_impl.h"  # implementation headers stay out
cmake -S "$here/consumer" -B "$work/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/consumer" >/dev/null
# The consumer links the installed libblockkv.so, not the build tree's.
ldd "$work/consumer/consumer" | grep "$work/prefix/lib/libblockkv.so" >/dev/null  # not -q: under pipefail an early exit would fail ldd
"$work/consumer/consumer" "$work/run"
