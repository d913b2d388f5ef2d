#!/usr/bin/env bash
# The tokenizer oracle, in one go, on a host with the Hugging Face `tokenizers` Python package (the GPU
# host): golden ids for the five tokenizers of the equality suite and HF's single- and multi-thread
# throughput on the benchmark text.
#
# Usage (from anywhere; paths are taken as given):
#   tests/oracle/tokenizer_gpu_host.sh CACHE_DIR OUT_DIR
#     CACHE_DIR  holds llama3_1 llama3 llama2 qwen3 /tokenizer.json (+ tokenizer_config.json), as written by
#                tests/data/fetch_tokenizers.sh; llama2_metaspace is derived here when missing
#                (tests/data/make_metaspace_variant.py).
#     OUT_DIR    receives at most 7 plain files, no folders (the device tool returns 8 files, 16 MiB each):
#                  <name>.jsonl.zst          the goldens, one per tokenizer (tests/oracle/tokenizer_golden.py)
#                                            (<name>.jsonl.gz instead when neither the zstd CLI nor the Python
#                                            zstandard module exists; on the build machine: gzip -d X.jsonl.gz &&
#                                            zstd -19 --rm X.jsonl  (from the file: the frame then records its size)
#                  tokenizer_bench.json      tests/oracle/tokenizer_bench.py's report
#                  tokenizer_meta_logs.tar   <name>.meta.json for each golden, golden.log, bench.log
# Environment: PYTHON (default python3), STEPS (default "golden bench"), BENCH_MB (default 12),
#   BENCH_REPEATS (default 3), NAMES (default "llama3_1,llama3,llama2,qwen3,llama2_metaspace").
# The benchmark text is generated here (deterministic; its SHA-256 is printed), in a temporary directory.
# Afterwards, on the build machine:
#   cp OUT_DIR/*.jsonl.zst tests/data/tokenizer_golden/
#   tar xf OUT_DIR/tokenizer_meta_logs.tar -C tests/data/tokenizer_golden --wildcards '*.meta.json'
set -euo pipefail
CACHE=${1:?usage: tokenizer_gpu_host.sh CACHE_DIR OUT_DIR}
OUT=${2:?usage: tokenizer_gpu_host.sh CACHE_DIR OUT_DIR}
PY=${PYTHON:-python3}
STEPS=${STEPS:-golden bench}
BENCH_MB=${BENCH_MB:-12}
BENCH_REPEATS=${BENCH_REPEATS:-3}
NAMES=${NAMES:-llama3_1,llama3,llama2,qwen3,llama2_metaspace}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
export PYTHONUNBUFFERED=1
shopt -s nullglob
has() { [[ " $STEPS " == *" $1 "* ]]; }
die() { echo "tokenizer_gpu_host: $*" >&2; exit 1; }

mkdir -p "$OUT"
echo "== python: $("$PY" --version 2>&1) ($(command -v "$PY" || echo "$PY"))"
echo -n "== tokenizers version: "
"$PY" -c 'import tokenizers; print(tokenizers.__version__)' || die "the tokenizers package is not importable by $PY"

for n in llama3_1 llama3 llama2 qwen3; do
  [ -s "$CACHE/$n/tokenizer.json" ] || die "$CACHE/$n/tokenizer.json is missing (tests/data/fetch_tokenizers.sh writes it)"
done
if [ ! -s "$CACHE/llama2_metaspace/tokenizer.json" ]; then
  echo "== deriving llama2_metaspace"
  "$PY" "$REPO/tests/data/make_metaspace_variant.py" --cache "$CACHE"
fi

# zstd: the CLI, else the Python zstandard module, else none (goldens then come back gzipped).
if command -v zstd >/dev/null 2>&1; then
  zmode=cli
elif "$PY" -c 'import zstandard' >/dev/null 2>&1; then
  zmode=module
else
  zmode=none
fi
echo "== zstd: $zmode"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/golden" "$TMP/pack"
pack() {  # the small files, as one tar in OUT (the device tool returns few files)
  tar cf "$OUT/tokenizer_meta_logs.tar" -C "$TMP/pack" . 2>/dev/null || echo "== warning: could not write $OUT/tokenizer_meta_logs.tar"
}
status=0

if has golden; then
  TEXT="$REPO/tests/data/tokenizer_text.jsonl.zst"
  [ -s "$TEXT" ] || die "$TEXT is missing"
  nozstd=()
  if [ "$zmode" = none ]; then
    # Nothing here reads .zst: regenerate the same text uncompressed (--check: same SHA-256 as the committed one).
    echo "== no zstd here: regenerating the test text uncompressed"
    "$PY" "$REPO/tests/data/make_tokenizer_text.py" --out "$TMP/tokenizer_text.jsonl" --check --quiet
    TEXT="$TMP/tokenizer_text.jsonl"
    nozstd=(--no-zstd)
  fi
  echo "== golden ($NAMES)"
  start=$SECONDS
  if "$PY" "$REPO/tests/oracle/tokenizer_golden.py" --tokenizers "$CACHE" --names "$NAMES" --text "$TEXT" \
      --out "$TMP/golden" ${nozstd[@]+"${nozstd[@]}"} 2>&1 | tee "$TMP/pack/golden.log"; then
    echo "== golden ok in $((SECONDS - start))s"
  else
    echo "== golden FAILED after $((SECONDS - start))s (golden.log in $OUT/tokenizer_meta_logs.tar)"
    status=1
  fi
  for f in "$TMP"/golden/*.jsonl.zst; do mv "$f" "$OUT/"; done
  for f in "$TMP"/golden/*.jsonl; do "$PY" -c 'import gzip, shutil, sys
with open(sys.argv[1], "rb") as i, gzip.open(sys.argv[2], "wb", 9) as o: shutil.copyfileobj(i, o)' "$f" "$OUT/$(basename "$f").gz"; done
  for f in "$TMP"/golden/*.meta.json; do cp "$f" "$TMP/pack/"; done
  pack
  ls -l "$OUT"
fi

if has bench; then
  echo "== bench text (${BENCH_MB} MB)"
  "$PY" "$REPO/tests/data/make_tokenizer_text.py" --bench-mb "$BENCH_MB" --out "$TMP/bench_text.jsonl" | tee "$TMP/pack/bench_text.log"
  echo "== bench ($NAMES, repeats $BENCH_REPEATS)"
  start=$SECONDS
  if "$PY" "$REPO/tests/oracle/tokenizer_bench.py" --text "$TMP/bench_text.jsonl" --tokenizers "$CACHE" --names "$NAMES" \
      --repeats "$BENCH_REPEATS" --json "$OUT/tokenizer_bench.json" 2>&1 >/dev/null | tee "$TMP/pack/bench.log"; then
    echo "== bench ok in $((SECONDS - start))s: $OUT/tokenizer_bench.json"
  else
    echo "== bench FAILED after $((SECONDS - start))s (bench.log in $OUT/tokenizer_meta_logs.tar)"
    status=1
  fi
  pack
fi

echo -n "== tokenizers version: "
"$PY" -c 'import tokenizers; print(tokenizers.__version__)'
ls -l "$OUT"
exit $status
