#!/usr/bin/env python3
"""Derives a Metaspace variant of the cached llama2 tokenizer, for the tokenizer equality suite.

The cached llama2 tokenizer.json (tests/data/fetch_tokenizers.sh) spells the SentencePiece space handling
as normalizers (Prepend "\u2581" + Replace " " -> "\u2581") with no pre-tokenizer. Mistral's tokenizer.json
spells it as a Metaspace pre-tokenizer instead. This script writes CACHE/llama2_metaspace/tokenizer.json:
the llama2 file with
  normalizer    = null
  pre_tokenizer = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": false}
  decoder       = Sequence[Replace "\u2581" -> " ", ByteFallback, Fuse, Strip " " (start 1, stop 0)]  (Mistral's)
and everything else (model, added tokens, post-processor) unchanged; tokenizer_config.json is copied.
It writes into the ignored cache only: the result derives from a licensed file and is never committed.

Usage (repository root, after the fetch script):
  tests/data/fetch_tokenizers.sh [CACHE_DIR] && python3 tests/data/make_metaspace_variant.py [--cache CACHE_DIR]
CACHE_DIR defaults to .cache/tokenizers under the repository. Any Python 3 works (standard library only).
The output is deterministic (same input file, same bytes out); it is rewritten on every run.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys

METASPACE = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
MISTRAL_DECODER = {
    "type": "Sequence",
    "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0},
    ],
}
EXPECTED_NORMALIZER = {
    "type": "Sequence",
    "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
    ],
}


def main():
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=os.path.join(repo, ".cache", "tokenizers"), help="tokenizer cache (default: %(default)s)")
    ap.add_argument("--src", default="llama2", help="source tokenizer name in the cache (default: %(default)s)")
    ap.add_argument("--dst", default="llama2_metaspace", help="variant name to write (default: %(default)s)")
    args = ap.parse_args()

    src = os.path.join(args.cache, args.src, "tokenizer.json")
    if not os.path.isfile(src):
        sys.exit("make_metaspace_variant: %s is missing (run tests/data/fetch_tokenizers.sh first)" % src)
    with open(src, "rb") as f:
        raw = f.read()
    tok = json.loads(raw.decode("utf-8"))

    if tok.get("normalizer") != EXPECTED_NORMALIZER:
        print("make_metaspace_variant: warning: %s's normalizer is not Prepend+Replace: %s" %
              (src, json.dumps(tok.get("normalizer"), ensure_ascii=False)[:200]), file=sys.stderr)
    if tok.get("pre_tokenizer") is not None:
        print("make_metaspace_variant: warning: %s already has a pre_tokenizer (replaced)" % src, file=sys.stderr)
    model = tok.get("model") or {}
    if model.get("type") != "BPE" or not model.get("byte_fallback"):
        print("make_metaspace_variant: warning: %s's model is not a byte-fallback BPE" % src, file=sys.stderr)

    tok["normalizer"] = None
    tok["pre_tokenizer"] = METASPACE
    tok["decoder"] = MISTRAL_DECODER

    dst_dir = os.path.join(args.cache, args.dst)
    os.makedirs(dst_dir, exist_ok=True)
    out = os.path.join(dst_dir, "tokenizer.json")
    data = json.dumps(tok, ensure_ascii=False, indent=2).encode("utf-8")
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, out)
    cfg = os.path.join(args.cache, args.src, "tokenizer_config.json")
    if os.path.isfile(cfg):
        shutil.copyfile(cfg, os.path.join(dst_dir, "tokenizer_config.json"))
    else:
        print("make_metaspace_variant: warning: %s is missing; no tokenizer_config.json copied" % cfg, file=sys.stderr)
    print("make_metaspace_variant: wrote %s (%d bytes, sha256 %s) from %s (sha256 %s)" %
          (out, len(data), hashlib.sha256(data).hexdigest()[:16], src, hashlib.sha256(raw).hexdigest()[:16]))


if __name__ == "__main__":
    main()
