#!/usr/bin/env bash
# Compares blockkv's CPU runtime with HF transformers on tiny synthetic models of every architecture, in
# block mode and full mode (DESIGN §8.3). Needs torch + transformers + numpy for the comparison itself;
# without them compare_hf.py reports SKIPPED and this script exits 0.
#
# Usage: run_oracle.sh BLOCKKV_BIN OUTDIR
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BLOCKKV_BIN OUTDIR" >&2
  exit 2
fi
BIN=$1
OUT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
mkdir -p "$OUT"

# Three context blocks and a final block; ids below the tiny preset's vocabulary of 256.
cat >"$OUT/prompt.json" <<'JSON'
{"blocks": [[12, 200, 45, 7, 99, 31, 250, 4, 18, 77, 140],
            [5, 66, 123, 9, 201, 33, 88, 14],
            [240, 3, 17, 150, 61, 92, 8, 111, 222, 46, 70, 19, 38],
            [101, 55, 2, 199, 84, 63, 11]],
 "names": ["system", "passage-a", "passage-b"]}
JSON

status=0
rows=()
for arch in llama3 llama2 mistral qwen2; do
  dir="$OUT/$arch"
  mkdir -p "$dir"
  "$BIN" make-model --preset tiny --arch "$arch" --seed 1 --dtype f32 --out "$dir/model" >"$dir/make-model.log" 2>&1 ||
    { echo "make-model failed for $arch: see $dir/make-model.log" >&2; status=1; continue; }
  for mode in block full; do
    "$BIN" run --model "$dir/model" --store "$dir/store" --prompt "$OUT/prompt.json" --mode "$mode" \
      --all-logits --logits-out "$dir/$mode.npy" >"$dir/run-$mode.log" 2>&1 ||
      { echo "run --mode $mode failed for $arch: see $dir/run-$mode.log" >&2; status=1; rows+=("$arch $mode RUN-FAILED - - -"); continue; }
    rc=0
    "$PY" "$HERE/compare_hf.py" --model "$dir/model" --prompt "$OUT/prompt.json" --logits "$dir/$mode.npy" \
      --mode "$mode" --json "$dir/$mode.json" >"$dir/compare-$mode.log" 2>&1 || rc=$?
    row=$("$PY" - "$dir/$mode.json" "$arch" "$mode" "$rc" <<'PYEOF'
import json, sys
path, arch, mode, rc = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception:
    print(f"{arch} {mode} ERROR(rc={rc}) - - -"); sys.exit()
if r.get("skipped"):
    print(f"{arch} {mode} SKIPPED - - -")
else:
    print(f"{arch} {mode} {'ok' if r['ok'] else 'FAIL'} {r['max_abs_diff']:.3g} {r['max_rel_diff']:.3g} {r['top1_agreement']:.3f}")
PYEOF
)
    rows+=("$row")
    [[ $rc -ne 0 ]] && status=1
  done
done

printf '%-8s %-6s %-10s %-12s %-12s %-8s\n' arch mode result max_abs max_rel top1
for r in "${rows[@]}"; do
  # shellcheck disable=SC2086
  printf '%-8s %-6s %-10s %-12s %-12s %-8s\n' $r
done
exit $status
