#!/usr/bin/env python3
"""Throughput of Hugging Face `tokenizers` on the benchmark text, for comparison with blockkv's tokenizer.

Runs where the `tokenizers` Python package is installed (the GPU host). The text is JSON Lines of strings
(>= 10 MB; make it with `tests/data/make_tokenizer_text.py --bench-mb 12 --out PATH.jsonl`, which writes
the same bytes on any machine). For each tokenizer CACHE/<name>/tokenizer.json it times
tok.encode_batch(lines, add_special_tokens=False) over all lines: one warm-up pass, then the best of
--repeats passes (encode_batch, not a Python loop over encode(), so the Python overhead is not measured).
When the installed version has encode_batch_fast (no offsets), that is timed the same way as well.

Two configurations, each in its own child process so the thread settings are in the environment before
`tokenizers` (and its rayon pool) loads:
  single   RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false   (one thread)
  multi    RAYON_NUM_THREADS=<logical CPUs>, TOKENIZERS_PARALLELISM=true
MB/s = UTF-8 bytes of the input lines (no JSON quoting, no newlines) / 10^6 / seconds; tokens/s likewise.

Usage:
  python3 tests/oracle/tokenizer_bench.py --text BENCH.jsonl[.zst] --tokenizers CACHE_DIR
      [--names a,b,...] [--repeats 3] [--modes single,multi] [--json OUT.json]
Prints a table on stderr and the JSON on stdout (and into --json).
"""
import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time

FIELD_NOTE = "mb_per_s = input UTF-8 bytes / 1e6 / best_s; tokens = ids without special tokens (add_special_tokens=False)"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def read_text(path):
    if path.endswith(".zst"):
        if shutil.which("zstd"):
            data = subprocess.run(["zstd", "-dc", path], stdout=subprocess.PIPE, check=True).stdout
        else:
            try:
                import zstandard
            except ImportError:
                sys.exit("tokenizer_bench: %s is .zst but neither the zstd CLI nor the zstandard module is here" % path)
            with open(path, "rb") as f:
                reader = zstandard.ZstdDecompressor().stream_reader(f)
                parts = []
                while True:
                    c = reader.read(1 << 20)
                    if not c:
                        break
                    parts.append(c)
            data = b"".join(parts)
    else:
        with open(path, "rb") as f:
            data = f.read()
    lines = [json.loads(l.decode("utf-8")) for l in data.split(b"\n") if l]  # split on \n only
    return data, lines


def logical_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def time_method(fn, lines, repeats):
    res = fn(lines, add_special_tokens=False)  # warm-up (caches, page faults, thread pool)
    tokens = sum(len(e.ids) for e in res)
    del res
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fn(lines, add_special_tokens=False)
        runs.append(time.perf_counter() - t0)
        del res
    return tokens, runs


def child(args):
    # The parent set RAYON_NUM_THREADS / TOKENIZERS_PARALLELISM in our environment before we started.
    import tokenizers
    _, lines = read_text(args.text)
    nbytes = sum(len(s.encode("utf-8")) for s in lines)
    out = {}
    for name in args.names.split(","):
        tok = tokenizers.Tokenizer.from_file(os.path.join(args.tokenizers, name, "tokenizer.json"))
        if getattr(tok, "padding", None):
            tok.no_padding()
        if getattr(tok, "truncation", None):
            tok.no_truncation()
        methods = [("encode_batch", tok.encode_batch)]
        if hasattr(tok, "encode_batch_fast") and not args.no_fast:
            methods.append(("encode_batch_fast", tok.encode_batch_fast))
        out[name] = {}
        for mname, fn in methods:
            tokens, runs = time_method(fn, lines, args.repeats)
            best = min(runs)
            out[name][mname] = {
                "best_s": round(best, 4), "runs_s": [round(r, 4) for r in runs], "bytes": nbytes, "tokens": tokens,
                "mb_per_s": round(nbytes / 1e6 / best, 3), "tokens_per_s": round(tokens / best, 1),
            }
            log("  [%s] %-18s %-18s best %7.3fs  %8.2f MB/s  %11.0f tokens/s  (runs %s)" % (
                args.mode, name, mname, best, nbytes / 1e6 / best, tokens / best, ", ".join("%.3f" % r for r in runs)))
    json.dump({"mode": args.mode, "env": {k: os.environ.get(k) for k in ("RAYON_NUM_THREADS", "TOKENIZERS_PARALLELISM")},
               "tokenizers_version": getattr(tokenizers, "__version__", "unknown"), "results": out}, sys.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", required=True, help="benchmark text, JSON Lines of strings (.jsonl or .jsonl.zst)")
    ap.add_argument("--tokenizers", required=True, help="directory holding <name>/tokenizer.json")
    ap.add_argument("--names", help="comma-separated names (default: every subdirectory with a tokenizer.json)")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes after the warm-up; the best counts (default: %(default)s)")
    ap.add_argument("--modes", default="single,multi", help="comma-separated: single, multi (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=0, help="threads for multi (default: all logical CPUs)")
    ap.add_argument("--no-fast", action="store_true", help="skip encode_batch_fast")
    ap.add_argument("--json", help="also write the JSON here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.names is None:
        args.names = ",".join(sorted(d for d in os.listdir(args.tokenizers) if os.path.isfile(os.path.join(args.tokenizers, d, "tokenizer.json"))))
    if not args.names:
        sys.exit("tokenizer_bench: no <name>/tokenizer.json under %s" % args.tokenizers)
    if args.child:
        child(args)
        return

    for n in args.names.split(","):
        if not os.path.isfile(os.path.join(args.tokenizers, n, "tokenizer.json")):
            sys.exit("tokenizer_bench: missing %s" % os.path.join(args.tokenizers, n, "tokenizer.json"))
    data, lines = read_text(args.text)
    nbytes = sum(len(s.encode("utf-8")) for s in lines)
    if nbytes < 10 * 10 ** 6:
        log("tokenizer_bench: warning: the text holds only %.2f MB of input (want >= 10 MB)" % (nbytes / 1e6))
    ncpu = logical_cpus()
    threads = args.threads or ncpu
    report = {
        "text": {"path": os.path.abspath(args.text), "sha256": hashlib.sha256(data).hexdigest(), "lines": len(lines),
                 "input_bytes_utf8": nbytes, "file_bytes": len(data)},
        "python": platform.python_version(), "host": platform.node(), "cpu_model": cpu_model(), "logical_cpus": ncpu,
        "repeats": args.repeats, "note": FIELD_NOTE, "modes": {},
    }
    del data, lines
    log("tokenizer_bench: %d lines, %.2f MB input, %d logical CPUs (%s)" % (report["text"]["lines"], nbytes / 1e6, ncpu, report["cpu_model"]))
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        env = dict(os.environ)
        if mode == "single":
            env["RAYON_NUM_THREADS"] = "1"
            env["TOKENIZERS_PARALLELISM"] = "false"
        elif mode == "multi":
            env["RAYON_NUM_THREADS"] = str(threads)
            env["TOKENIZERS_PARALLELISM"] = "true"
        else:
            sys.exit("tokenizer_bench: unknown mode %r" % mode)
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--mode", mode, "--text", args.text, "--tokenizers",
               args.tokenizers, "--names", args.names, "--repeats", str(args.repeats)] + (["--no-fast"] if args.no_fast else [])
        t0 = time.time()
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE)
        if r.returncode != 0:
            sys.exit("tokenizer_bench: the %s child failed (rc %d)" % (mode, r.returncode))
        res = json.loads(r.stdout.decode("utf-8"))
        report["tokenizers_version"] = res["tokenizers_version"]
        report["modes"][mode] = {"threads": 1 if mode == "single" else threads, "env": res["env"], "results": res["results"],
                                 "wall_s": round(time.time() - t0, 1)}
    out = json.dumps(report, indent=1, ensure_ascii=False)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(out + "\n")
    print(out)
    log("%-18s %-8s %-18s %10s %14s" % ("name", "mode", "method", "MB/s", "tokens/s"))
    for mode, m in report["modes"].items():
        for name, r in m["results"].items():
            for meth, v in r.items():
                log("%-18s %-8s %-18s %10.2f %14.0f" % (name, mode, meth, v["mb_per_s"], v["tokens_per_s"]))


if __name__ == "__main__":
    main()
