#!/usr/bin/env python3
"""Golden token ids from Hugging Face `tokenizers` for the tokenizer equality suite.

Runs where the `tokenizers` Python package is installed (the GPU host). For each tokenizer
TOKENIZERS/<name>/tokenizer.json and every line of the test text (tests/data/tokenizer_text.jsonl.zst,
JSON Lines of strings) it records what HF produces, one JSON line per input line, in order:

  {"ids":[...],"bos":B,"rt":RT}                 usual form
  {"ids":[...],"plain":[...],"rt":RT}           when the relation below does not hold
  ... optionally followed by ,"rs":"..."        (see below)

  ids    tok.encode(text, add_special_tokens=True).ids
  bos    how many ids the post-processor put in front: 0 when ids == plain, 1 when ids[1:] == plain, where
         plain = tok.encode(text, add_special_tokens=False).ids. So plain is ids[bos:].
  plain  present instead of "bos" when plain is neither ids nor ids[1:] (then both lists are in full).
  rt     tok.decode(plain, skip_special_tokens=False): true when it equals the input text, else the decoded
         string.
  rs     present only when tok.decode(plain, skip_special_tokens=True) differs from the decode above: that
         string.
Keys always come in this order (ids, bos|plain, rt, rs); json.dumps(..., ensure_ascii=False,
separators=(",", ":")), so strings may hold raw U+2028/U+0085: split the file on "\\n" only.

Writes OUT/<name>.jsonl.zst (zstd -19, one frame that records its content size, as the C++ test's reader
needs; .jsonl with --no-zstd or when no zstd is available: compress that later with `zstd -19 FILE`, from
the file, not from a pipe, so the size is recorded) and
OUT/<name>.meta.json (tokenizers version, SHA-256 of the tokenizer.json and of the uncompressed text and
of the uncompressed golden lines, line and token counts).

Usage:
  python3 tests/oracle/tokenizer_golden.py --tokenizers CACHE_DIR [--names a,b,...] [--text PATH]
      [--out DIR] [--no-zstd]
Defaults: every CACHE_DIR/<name>/tokenizer.json; text tests/data/tokenizer_text.jsonl.zst (a plain .jsonl
works too); out tests/data/tokenizer_golden. Reads .zst through the zstd CLI, else the `zstandard` module.
"""
import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FORMAT = ('one JSON object per input line: {"ids":[...],"bos":0|1,"rt":true|"decoded"} or '
          '{"ids":[...],"plain":[...],"rt":...}; optional "rs" (decode with skip_special_tokens=True when it differs). '
          'ids = encode(add_special_tokens=True); plain = encode(add_special_tokens=False) = ids[bos:]; '
          'rt = decode(plain, skip_special_tokens=False), true when equal to the input')


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def have_zstandard():
    try:
        import zstandard  # noqa: F401
        return True
    except ImportError:
        return False


def read_maybe_zst(path):
    """The bytes of path, decompressed when it ends in .zst (zstd CLI, else the zstandard module)."""
    if not path.endswith(".zst"):
        with open(path, "rb") as f:
            return f.read()
    if shutil.which("zstd"):
        r = subprocess.run(["zstd", "-dc", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            sys.exit("tokenizer_golden: zstd -dc %s failed: %s" % (path, r.stderr.decode(errors="replace").strip()))
        return r.stdout
    if have_zstandard():
        import zstandard
        with open(path, "rb") as f:
            reader = zstandard.ZstdDecompressor().stream_reader(f)
            chunks = []
            while True:
                c = reader.read(1 << 20)
                if not c:
                    break
                chunks.append(c)
        return b"".join(chunks)
    sys.exit("tokenizer_golden: cannot read %s: neither the zstd CLI nor the zstandard module is here; "
             "pass an uncompressed .jsonl (tests/data/make_tokenizer_text.py --out X.jsonl makes the same text)" % path)


def parse_lines(data, path):
    if not data.endswith(b"\n"):
        sys.exit("tokenizer_golden: %s does not end with a newline" % path)
    texts = []
    for n, raw in enumerate(data[:-1].split(b"\n"), 1):  # split on \n only: U+2028 etc. may sit raw in strings
        s = json.loads(raw.decode("utf-8"))
        if not isinstance(s, str):
            sys.exit("tokenizer_golden: %s line %d is not a JSON string" % (path, n))
        texts.append(s)
    return texts


class Writer:
    """Writes bytes to path through `zstd -19` (CLI), the zstandard module, or uncompressed."""

    def __init__(self, path, mode, level):
        self.path, self.mode = path, mode
        self.sha = hashlib.sha256()
        self.nbytes = 0
        tmp = path + ".tmp"
        self.tmp = tmp
        if mode == "cli":  # plain first, then `zstd FILE`: a frame from a file records its content size
            self.level = level
            self.plain_tmp = path + ".plain.tmp"
            self.f = open(self.plain_tmp, "wb")
            self.sink = self.f
        elif mode == "module":  # buffered, then one compress() call: the oldest zstandard API
            self.level = level
            self.f = open(tmp, "wb")
            self.sink = io.BytesIO()
        else:
            self.f = open(tmp, "wb")
            self.sink = self.f

    def write(self, b):
        self.sha.update(b)
        self.nbytes += len(b)
        self.sink.write(b)

    def close(self):
        if self.mode == "cli":
            self.f.close()
            rc = subprocess.run(["zstd", "-%d" % self.level, "-q", "-f", "-T0", self.plain_tmp, "-o", self.tmp]).returncode
            os.remove(self.plain_tmp)
            if rc != 0:
                sys.exit("tokenizer_golden: zstd failed (rc %d) writing %s" % (rc, self.path))
        elif self.mode == "module":
            import zstandard
            self.f.write(zstandard.ZstdCompressor(level=self.level).compress(self.sink.getvalue()))
            self.f.close()
        else:
            self.f.close()
        os.replace(self.tmp, self.path)


def batches(texts, max_lines, max_bytes):
    start, size = 0, 0
    for i, s in enumerate(texts):
        size += len(s)
        if i + 1 - start >= max_lines or size >= max_bytes:
            yield start, i + 1
            start, size = i + 1, 0
    if start < len(texts):
        yield start, len(texts)


def golden_one(tokenizers_mod, name, tok_path, texts, text_sha, out_dir, mode, level, check_every):
    t0 = time.time()
    with open(tok_path, "rb") as f:
        tok_sha = hashlib.sha256(f.read()).hexdigest()
    tok = tokenizers_mod.Tokenizer.from_file(tok_path)
    notes = []
    if getattr(tok, "padding", None):
        notes.append("padding was enabled in the file; disabled")
        tok.no_padding()
    if getattr(tok, "truncation", None):
        notes.append("truncation was enabled in the file; disabled")
        tok.no_truncation()

    ext = ".jsonl.zst" if mode in ("cli", "module") else ".jsonl"
    out_path = os.path.join(out_dir, name + ext)
    for stale in (name + ".jsonl.zst", name + ".jsonl"):  # never leave the other form behind
        p = os.path.join(out_dir, stale)
        if p != out_path and os.path.exists(p):
            os.remove(p)
    w = Writer(out_path, mode, level)

    stats = {"tokens": 0, "tokens_plain": 0, "bos": {}, "plain_lines": 0, "rt_true": 0, "rt_diff": 0, "rs_lines": 0,
             "max_tokens_line": 0, "single_checked": 0, "single_mismatch": 0}
    mismatch_examples = []
    for a, b in batches(texts, 2048, 4 << 20):
        chunk = texts[a:b]
        enc_sp = tok.encode_batch(chunk, add_special_tokens=True)
        enc_pl = tok.encode_batch(chunk, add_special_tokens=False)
        ids_sp = [e.ids for e in enc_sp]
        ids_pl = [e.ids for e in enc_pl]
        del enc_sp, enc_pl
        dec = tok.decode_batch(ids_pl, skip_special_tokens=False)
        dec_skip = tok.decode_batch(ids_pl, skip_special_tokens=True)
        out = []
        for j, text in enumerate(chunk):
            ids, plain = list(ids_sp[j]), list(ids_pl[j])
            rec = {"ids": ids}
            if ids == plain:
                rec["bos"] = 0
            elif len(ids) == len(plain) + 1 and ids[1:] == plain:
                rec["bos"] = 1
            else:
                rec["plain"] = plain
            if "bos" in rec:
                stats["bos"][str(rec["bos"])] = stats["bos"].get(str(rec["bos"]), 0) + 1
            else:
                stats["plain_lines"] += 1
            rec["rt"] = True if dec[j] == text else dec[j]
            if rec["rt"] is True:
                stats["rt_true"] += 1
            else:
                stats["rt_diff"] += 1
            if dec_skip[j] != dec[j]:
                rec["rs"] = dec_skip[j]
                stats["rs_lines"] += 1
            stats["tokens"] += len(ids)
            stats["tokens_plain"] += len(plain)
            stats["max_tokens_line"] = max(stats["max_tokens_line"], len(ids))
            line_no = a + j + 1
            if check_every and (line_no <= 300 or line_no % check_every == 0):
                # encode_batch must agree with encode; check a sample of lines one at a time
                stats["single_checked"] += 1
                if tok.encode(text, add_special_tokens=True).ids != ids or tok.encode(text, add_special_tokens=False).ids != plain:
                    stats["single_mismatch"] += 1
                    if len(mismatch_examples) < 5:
                        mismatch_examples.append(line_no)
            out.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
        w.write(("\n".join(out) + "\n").encode("utf-8"))
    w.close()

    meta = {
        "name": name,
        "tokenizers_version": getattr(tokenizers_mod, "__version__", "unknown"),
        "python": platform.python_version(),
        "tokenizer_json": os.path.join(name, "tokenizer.json"),
        "tokenizer_json_sha256": tok_sha,
        "text_sha256": text_sha,
        "lines": len(texts),
        "text_bytes_utf8": sum(len(s.encode("utf-8")) for s in texts),
        "output": os.path.basename(out_path),
        "output_sha256_uncompressed": w.sha.hexdigest(),
        "output_bytes_uncompressed": w.nbytes,
        "output_bytes": os.path.getsize(out_path),
        "format": FORMAT,
        "seconds": round(time.time() - t0, 2),
        "notes": notes,
        "single_mismatch_lines": mismatch_examples,
    }
    meta.update(stats)
    with open(os.path.join(out_dir, name + ".meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizers", required=True, help="directory holding <name>/tokenizer.json")
    ap.add_argument("--names", help="comma-separated names (default: every subdirectory with a tokenizer.json)")
    ap.add_argument("--text", default=os.path.join(REPO, "tests", "data", "tokenizer_text.jsonl.zst"), help="test text (default: %(default)s)")
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "tokenizer_golden"), help="output directory (default: %(default)s)")
    ap.add_argument("--no-zstd", action="store_true", help="write uncompressed <name>.jsonl")
    ap.add_argument("--level", type=int, default=19, help="zstd level (default: %(default)s)")
    ap.add_argument("--check-every", type=int, default=97, help="also encode the first 300 lines and every Nth line one by one "
                    "and compare with encode_batch (0: never; default: %(default)s)")
    args = ap.parse_args()

    try:
        import tokenizers
    except ImportError as e:
        sys.exit("tokenizer_golden: the `tokenizers` package is not importable (%s)" % e)

    if args.names:
        names = [n.strip() for n in args.names.split(",") if n.strip()]
    else:
        names = sorted(d for d in os.listdir(args.tokenizers) if os.path.isfile(os.path.join(args.tokenizers, d, "tokenizer.json")))
    if not names:
        sys.exit("tokenizer_golden: no <name>/tokenizer.json under %s" % args.tokenizers)
    missing = [n for n in names if not os.path.isfile(os.path.join(args.tokenizers, n, "tokenizer.json"))]
    if missing:
        sys.exit("tokenizer_golden: missing %s" % ", ".join(os.path.join(args.tokenizers, n, "tokenizer.json") for n in missing))

    if args.no_zstd:
        mode = "none"
    elif shutil.which("zstd"):
        mode = "cli"
    elif have_zstandard():
        mode = "module"
    else:
        log("tokenizer_golden: warning: neither the zstd CLI nor the zstandard module is here: writing uncompressed .jsonl")
        mode = "none"

    data = read_maybe_zst(args.text)
    text_sha = hashlib.sha256(data).hexdigest()
    texts = parse_lines(data, args.text)
    del data
    os.makedirs(args.out, exist_ok=True)
    log("tokenizer_golden: tokenizers %s, python %s, %d lines (%.2f MB of UTF-8 input; file sha256 %s), output %s (%s)" % (
        getattr(tokenizers, "__version__", "?"), platform.python_version(), len(texts),
        sum(len(s.encode("utf-8")) for s in texts) / 1e6, text_sha, args.out, mode))

    metas = []
    for name in names:
        log("tokenizer_golden: %s ..." % name)
        metas.append(golden_one(tokenizers, name, os.path.join(args.tokenizers, name, "tokenizer.json"), texts, text_sha,
                                args.out, mode, args.level, args.check_every))
        m = metas[-1]
        log("tokenizer_golden: %s done in %.1fs" % (name, m["seconds"]))

    print("%-18s %8s %10s %10s %-16s %6s %8s %8s %7s %10s" % ("name", "lines", "tokens", "plain", "bos", "plain*", "rt_diff", "rs", "1by1!=", "out_bytes"))
    bad = 0
    for m in metas:
        bos = ",".join("%s:%d" % kv for kv in sorted(m["bos"].items()))
        print("%-18s %8d %10d %10d %-16s %6d %8d %8d %7d %10d" % (m["name"], m["lines"], m["tokens"], m["tokens_plain"], bos,
                                                                  m["plain_lines"], m["rt_diff"], m["rs_lines"], m["single_mismatch"], m["output_bytes"]))
        bad += m["single_mismatch"]
        for n in m["notes"]:
            print("  %s: %s" % (m["name"], n))
    print("tokenizers %s; text sha256 %s; goldens in %s" % (metas[0]["tokenizers_version"], text_sha, args.out))
    if bad:
        print("WARNING: encode() and encode_batch() disagreed on %d sampled lines (see single_mismatch_lines in the meta files)" % bad)
        sys.exit(3)


if __name__ == "__main__":
    main()
