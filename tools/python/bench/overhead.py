#!/usr/bin/env python3
"""What the Python module and the HTTP server add to a request's time to first token.

    PYTHONPATH=build/tools/python /usr/bin/python3 tools/python/bench/overhead.py [--model DIR] [--device cuda]
        [--gpu-tier 8G] [--passages 64] [--requests 50] [--cli build/tools/blockkv] [--json out.json]

One prompt of --passages stored passages (named by id) and a short question, answered with one generated token
(so the answer is the first token) --requests times, after a warm-up, in three ways:

  engine   the engine's own TTFT (EngineTiming.ttft_ms: lookups, loads, re-encoding, the final block's pass)
  python   engine.generate(...) in this process: wall time around the call
  http     POST /v1/chat/completions to `blockkv serve` (the same model, store and tiers): wall time at the client

"added" is the wall time minus the engine's own ttft_ms + decode_ms reported for that same request: building
the request (tokenizing the question, resolving passage ids), crossing the binding or the HTTP stack and JSON,
and returning the result. Prints a table and writes JSON (--json).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import blockkv

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "attention", "model", "demo_corpus.jsonl")


def percentile(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]


def passages(n):
    base = [json.loads(l) for l in open(CORPUS, encoding="utf-8") if l.strip()]
    return [{"id": f"p{i}", "text": base[i % len(base)]["text"] + f" (copy {i})"} for i in range(n)]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model")
    p.add_argument("--device", default="cpu")
    p.add_argument("--gpu-tier", default="0")
    p.add_argument("--host-tier", default="1G")
    p.add_argument("--passages", type=int, default=64)
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--cli", default=os.environ.get("BLOCKKV_CLI", "build/tools/blockkv"))
    p.add_argument("--json")
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="blockkv-overhead-")
    model = a.model or blockkv.make_model(os.path.join(work, "model"), preset="tiny")
    corpus = passages(a.passages)
    ids = [c["id"] for c in corpus]
    question = "How tall is the lighthouse?"
    rows = {"engine": [], "python": [], "http": []}

    # The engine in this process, then the same through Python's wall clock.
    with blockkv.Engine(model=model, store=os.path.join(work, "py-store"), device=a.device, gpu_tier=a.gpu_tier,
                        host_tier=a.host_tier) as engine:
        engine.precompute(corpus)
        for i in range(a.requests + 2):
            t0 = time.perf_counter()
            r = engine.generate(question, passages=ids, max_new_tokens=1, temperature=0)
            wall = (time.perf_counter() - t0) * 1e3
            if i < 2:
                continue  # warm-up: the tiers fill
            inner = r.timing["ttft_ms"] + r.timing["decode_ms"]
            rows["engine"].append(r.timing["ttft_ms"])
            rows["python"].append(wall - inner)
        tiers = sorted({b.tier for b in r.blocks[1:]})

    # The server over the same kind of store.
    log = open(os.path.join(work, "serve.log"), "w+")
    server = subprocess.Popen([a.cli, "serve", "--model", model, "--store", os.path.join(work, "http-store"), "--port",
                               "0", "--device", a.device, "--host-tier", a.host_tier, "--max-passages",
                               str(max(64, a.passages))] + (["--gpu-tier", a.gpu_tier] if a.gpu_tier != "0" else []),
                              stderr=log)
    try:
        port = None
        for _ in range(6000):
            log.seek(0)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read())
            if m:
                port = int(m.group(1))
                break
            if server.poll() is not None:
                sys.exit("the server exited: " + open(log.name).read())
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"

        def post(path, body):
            req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=600) as res:
                return json.loads(res.read())

        post("/v1/passages", {"passages": corpus})
        body = {"messages": [{"role": "user", "content": question}], "passages": ids, "max_tokens": 1,
                "temperature": 0}
        http_engine = []
        for i in range(a.requests + 2):
            t0 = time.perf_counter()
            r = post("/v1/chat/completions", body)
            wall = (time.perf_counter() - t0) * 1e3
            if i < 2:
                continue
            t = r["blockkv"]["timing"]
            http_engine.append(t["ttft_ms"])
            rows["http"].append(wall - t["ttft_ms"] - t["decode_ms"])
    finally:
        server.terminate()
        server.wait(timeout=60)

    out = {"device": a.device, "passages": a.passages, "requests": a.requests, "tiers": tiers,
           "engine_ttft_ms": {"p50": statistics.median(rows["engine"]), "p90": percentile(rows["engine"], 0.9)},
           "http_engine_ttft_ms": {"p50": statistics.median(http_engine)},
           "python_added_ms": {"p50": statistics.median(rows["python"]), "p90": percentile(rows["python"], 0.9)},
           "http_added_ms": {"p50": statistics.median(rows["http"]), "p90": percentile(rows["http"], 0.9)}}
    print(f"{a.passages} passages by id ({', '.join(tiers)}), {a.requests} requests, device {a.device}")
    print("| path | p50 ms | p90 ms |\n|---|---:|---:|")
    print(f"| engine TTFT (C++) | {out['engine_ttft_ms']['p50']:.3f} | {out['engine_ttft_ms']['p90']:.3f} |")
    print(f"| added by Python's generate | {out['python_added_ms']['p50']:.3f} | {out['python_added_ms']['p90']:.3f} |")
    print(f"| added by HTTP (blockkv serve + urllib) | {out['http_added_ms']['p50']:.3f} | {out['http_added_ms']['p90']:.3f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
