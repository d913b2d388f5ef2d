#!/usr/bin/env python3
"""Retrieval-augmented answers with blockkv: BM25 over a corpus, passages precomputed once, answers by id.

    PYTHONPATH=build/tools/python /usr/bin/python3 tools/python/examples/retrieval.py
    ... --model DIR --store DIR --question "How long is the ferry crossing?" --top-k 3 --json

1. Loads a corpus (JSON Lines of {"id", "title", "text"}; default: the corpus that ships with blockkv,
   attention/model/demo_corpus.jsonl) and builds a small BM25 index over it (written here, in Python).
2. Precomputes every passage into a blockkv store: each passage's keys and values are encoded once and
   stored under its id (passages already stored are skipped, so a rerun over the same store is quick).
3. For each question, retrieves the top-k passage ids with BM25 and asks the engine with
   `engine.generate(question, passages=ids)`: the passages' blocks come from the store (or the host tier),
   and only the question is prefilled.

Without --model it writes blockkv's synthetic tiny model (random weights: the answers are noise, the path
is real). Where the answers come from is behind one small interface (`Answerer`: prepare, answer), so an
HTTP client of `blockkv serve` stands in for the local engine with --server URL:

    blockkv serve --model DIR --store DIR --port 8000 &
    /usr/bin/python3 tools/python/examples/retrieval.py --server http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import blockkv

DEFAULT_CORPUS = Path(__file__).resolve().parents[3] / "attention" / "model" / "demo_corpus.jsonl"
DEFAULT_QUESTIONS = [
    "How tall is the lighthouse of Port Velland?",
    "How long does the ferry crossing to Oskar Holm take?",
    "What wood do the smokehouses on Quay Street burn?",
    "When is the Lighthouse Festival held?",
]


# ---- retrieval -----------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset("a an and are at by do does for from how in is it its of on or the to was what when "
                       "where which who with".split())


def words(text: str) -> List[str]:
    """Lower-case alphanumeric words, stop words dropped."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


class BM25:
    """Okapi BM25 over a fixed set of documents (k1 and b as usual; idf with the +1 that keeps it positive)."""

    def __init__(self, docs: Sequence[Tuple[str, str]], k1: float = 1.5, b: float = 0.75):
        self.ids = [doc_id for doc_id, _ in docs]
        self.k1, self.b = k1, b
        self.tf = [Counter(words(text)) for _, text in docs]
        self.len = [sum(tf.values()) for tf in self.tf]
        self.avg_len = sum(self.len) / max(len(self.len), 1)
        df = Counter(w for tf in self.tf for w in tf)
        n = len(docs)
        self.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}

    def score(self, query_words: Iterable[str], i: int) -> float:
        tf, norm = self.tf[i], self.k1 * (1 - self.b + self.b * self.len[i] / self.avg_len)
        return sum(self.idf[w] * tf[w] * (self.k1 + 1) / (tf[w] + norm) for w in query_words if w in tf)

    def search(self, query: str, k: int) -> List[Tuple[str, float]]:
        """The k best (id, score) pairs with a positive score, best first (ties: corpus order)."""
        q = words(query)
        scored = [(self.score(q, i), -i) for i in range(len(self.ids))]
        scored.sort(reverse=True)
        return [(self.ids[-neg_i], s) for s, neg_i in scored[:k] if s > 0]


def load_corpus(path: Path) -> List[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ---- answering -----------------------------------------------------------------------------------------

class Answerer:
    """Where answers come from: `prepare` makes the corpus's passages available by id (returns a summary
    dict), `answer` answers a question over passages named by id (returns {"text", "blocks": [{"name",
    "tier"}], "ttft_ms"})."""

    def prepare(self, corpus: List[dict]) -> dict:
        raise NotImplementedError

    def answer(self, question: str, passage_ids: List[str], max_new_tokens: int) -> dict:
        raise NotImplementedError

    def close(self) -> None:
        pass


class LocalAnswerer(Answerer):
    """A blockkv Engine in this process."""

    def __init__(self, model: str, store: str, device: str = "cpu", host_tier: str = "64M"):
        self.engine = blockkv.Engine(model=model, store=store, device=device, host_tier=host_tier)

    def prepare(self, corpus: List[dict]) -> dict:
        return self.engine.precompute(corpus)

    def answer(self, question: str, passage_ids: List[str], max_new_tokens: int) -> dict:
        r = self.engine.generate(question, passages=passage_ids, max_new_tokens=max_new_tokens)
        return {"text": r.text, "blocks": [{"name": b.name, "tier": b.tier} for b in r.blocks],
                "ttft_ms": r.timing["ttft_ms"]}

    def close(self) -> None:
        self.engine.close()


class HttpAnswerer(Answerer):
    """A running `blockkv serve`, over plain HTTP (urllib; no client library): the same questions, the passages
    named by id in the OpenAI-style body's `passages` field."""

    def __init__(self, url: str, api_key: Optional[str] = None):
        self.url = url.rstrip("/")
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = "Bearer " + api_key

    def _post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), headers=self.headers)
        try:
            with urllib.request.urlopen(req, timeout=300) as res:
                return json.loads(res.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{path}: HTTP {e.code}: {e.read().decode(errors='replace')}") from None

    def prepare(self, corpus: List[dict]) -> dict:
        passages = [{"id": p["id"], "text": p["text"], **({"title": p["title"]} if p.get("title") else {})}
                    for p in corpus]
        return self._post("/v1/passages", {"passages": passages})

    def answer(self, question: str, passage_ids: List[str], max_new_tokens: int) -> dict:
        r = self._post("/v1/chat/completions", {"messages": [{"role": "user", "content": question}],
                                                "passages": passage_ids, "max_tokens": max_new_tokens,
                                                "temperature": 0})
        return {"text": r["choices"][0]["message"]["content"],
                "blocks": [{"name": b.get("name", ""), "tier": b["tier"]} for b in r["blockkv"]["blocks"]],
                "ttft_ms": r["blockkv"]["timing"]["ttft_ms"]}


def open_answerer(args: argparse.Namespace, work: str) -> Answerer:
    if args.server:
        return HttpAnswerer(args.server, args.api_key or os.environ.get("BLOCKKV_API_KEY"))
    model = args.model
    if model is None:
        model = blockkv.make_model(os.path.join(work, "model"), preset="tiny", seed=1)
    store = args.store or os.path.join(work, "store")
    return LocalAnswerer(model, store, device=args.device)


def run(args: argparse.Namespace, work: str, out=sys.stdout) -> List[dict]:
    corpus = load_corpus(Path(args.corpus))
    index = BM25([(p["id"], p.get("title", "") + "\n" + p["text"]) for p in corpus])
    answerer = open_answerer(args, work)
    try:
        summary = answerer.prepare(corpus)
        if not args.json:
            print(f"corpus: {summary['passages']} passages from {args.corpus}: {summary['encoded']} encoded and "
                  f"stored, {summary['already_stored']} already stored ({summary['seconds']:.2f} s)", file=out)
        results = []
        for question in args.question or DEFAULT_QUESTIONS:
            hits = index.search(question, args.top_k)
            ids = [doc_id for doc_id, _ in hits]
            a = answerer.answer(question, ids, args.max_new_tokens)
            results.append({"question": question, "retrieved": [{"id": i, "score": s} for i, s in hits], **a})
            if not args.json:
                print(f"\nQ: {question}", file=out)
                print("   retrieved: " + ", ".join(f"{i} ({s:.2f})" for i, s in hits), file=out)
                print(f"   answer: {a['text']!r}", file=out)
                tiers = ", ".join(f"{b['name'] or 'system'}: {b['tier']}" for b in a["blocks"])
                print(f"   blocks: {tiers}; first token after {a['ttft_ms']:.2f} ms", file=out)
        if args.json:
            print(json.dumps({"precompute": summary, "answers": results}), file=out)
        return results
    finally:
        answerer.close()


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model directory (default: a synthetic tiny model written to the work dir)")
    p.add_argument("--store", help="store directory (default: in the work dir)")
    p.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="JSON Lines of {id, title, text}")
    p.add_argument("--question", action="append", help="a question (repeat; default: a few about the corpus)")
    p.add_argument("--top-k", type=int, default=3, help="passages retrieved per question")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--work-dir", help="keep the model and store here (default: a temporary directory)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--server", help="ask a running `blockkv serve` at this URL (e.g. http://127.0.0.1:8000) "
                                    "instead of an engine in this process")
    p.add_argument("--api-key", help="with --server: its API key (default: $BLOCKKV_API_KEY)")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.work_dir:
        os.makedirs(args.work_dir, exist_ok=True)
        run(args, args.work_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="blockkv-retrieval-") as work:
            run(args, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
