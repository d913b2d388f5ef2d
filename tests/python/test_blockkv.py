"""The blockkv Python module: engine, store, errors, threads, and the retrieval example (docs/python.md)."""

import importlib.util
import json
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import blockkv
from conftest import CORPUS_PATH, EXAMPLE

# The keys of `blockkv run --json`'s "timing" (tools/runtime_util.cc TimingJson).
TIMING_KEYS = {"lookup_ms", "load_ms", "encode_ms", "prefill_ms", "ttft_ms", "decode_ms", "store_ms", "hits",
               "misses", "host_ms", "host_hits", "gpu_ms", "gpu_hits", "admit_ms", "bytes_loaded",
               "prompt_tokens", "generated_tokens", "streamed", "stream_wait_ms"}
QUESTION = "How tall is the lighthouse of Port Velland?"


def run_cli(cli, *args):
    out = subprocess.run([cli, *map(str, args)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


# ---- module -------------------------------------------------------------------------------------------

def test_version_is_the_library_version(cli):
    assert re.fullmatch(r"\d+\.\d+\.\d+", blockkv.__version__)
    out = subprocess.run([cli, "--version"], check=True, capture_output=True, text=True).stdout
    assert blockkv.__version__ in out


def test_make_model_writes_a_loadable_model_with_tokenizer(tmp_path):
    d = blockkv.make_model(tmp_path / "m", preset="tiny", seed=3)
    assert d == str(tmp_path / "m")
    for f in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "m" / f).is_file(), f
    with blockkv.Engine(model=d) as e:
        info = e.model
        assert info["has_tokenizer"] and info["layers"] == 2 and info["vocab_size"] == 512
        assert info["stop_token_ids"], "the model's eos ids end generation"
        assert e.decode(e.tokenize("Port Velland")) == "Port Velland"
    # Another seed, other weights: another fingerprint.
    with blockkv.Engine(model=blockkv.make_model(tmp_path / "m2", seed=4)) as e2:
        assert e2.model["fingerprint"] != info["fingerprint"]
    with pytest.raises(ValueError, match="preset"):
        blockkv.make_model(tmp_path / "bad", preset="enormous")


@pytest.mark.parametrize("text,expected", [(4096, 4096), ("4096", 4096), ("512M", 512 << 20), ("1.5G", 3 << 29),
                                           ("8GiB", 8 << 30), ("2k", 2048), (None, 0)])
def test_parse_size(text, expected):
    assert blockkv.parse_size(text) == expected


@pytest.mark.parametrize("bad,exc", [("8X", ValueError), ("", ValueError), (-1, ValueError), (1.5, TypeError),
                                     (True, TypeError)])
def test_parse_size_refuses(bad, exc):
    with pytest.raises(exc):
        blockkv.parse_size(bad)


# ---- precompute and generate ------------------------------------------------------------------------

def test_precompute_dicts_then_generate_by_id(engine, corpus):
    s = engine.precompute(corpus)
    assert (s["passages"], s["encoded"], s["already_stored"]) == (12, 12, 0)
    assert s["tokens"] > 12 * 20 and s["seconds"] >= 0 and len(s["ids"]) == 12
    again = engine.precompute(iter(corpus))  # any iterable; stored passages are skipped
    assert (again["encoded"], again["already_stored"]) == (0, 12) and again["ids"] == s["ids"]

    r = engine.generate(QUESTION, passages=["harbor-002", "harbor-011"], max_new_tokens=8)
    assert isinstance(r, blockkv.Result) and isinstance(r.text, str) and str(r) == r.text
    assert 1 <= len(r.tokens) <= 8 and all(isinstance(t, int) for t in r.tokens)
    assert [b.name for b in r.blocks] == ["", "harbor-002", "harbor-011"]
    assert [b.tier for b in r.blocks] == ["encoded", "store", "store"]  # the system preamble is new
    assert [b.hit for b in r.blocks] == [False, True, True]
    assert r.blocks[1].id == s["ids"][1] and re.fullmatch(r"[0-9a-f]{32}", r.blocks[0].id)
    assert set(r.timing) == TIMING_KEYS
    assert (r.timing["hits"], r.timing["misses"], r.timing["generated_tokens"]) == (2, 1, len(r.tokens))
    assert r.text == engine.decode(r.tokens)
    # The preamble was stored after the first request: now every block comes from the store, same answer.
    r2 = engine.generate(QUESTION, passages=["harbor-002", "harbor-011"], max_new_tokens=8)
    assert [b.tier for b in r2.blocks] == ["store"] * 3 and r2.tokens == r.tokens


def test_generate_by_text_stores_the_passage_under_its_id(engine, corpus):
    p = {k: corpus[1][k] for k in ("id", "title", "text")}
    cold = engine.generate(QUESTION, passages=[p], max_new_tokens=6, logits=True)
    assert [(b.name, b.tier) for b in cold.blocks] == [("", "encoded"), ("harbor-002", "encoded")]
    warm = engine.generate(QUESTION, passages=["harbor-002"], max_new_tokens=6, logits=True)
    assert [b.tier for b in warm.blocks] == ["store", "store"]
    # A stored block gives exactly what a fresh encode gives.
    assert warm.tokens == cold.tokens and np.array_equal(warm.logits, cold.logits)
    assert warm.logits.dtype == np.float32 and warm.logits.shape == (engine.model["vocab_size"],)
    # precompute formats and tokenizes a text passage as a prompt does: the same block.
    assert engine.precompute([p])["ids"] == [cold.blocks[1].id]
    # A text passage without an id is encoded and not named.
    anon = engine.generate(QUESTION, passages=[{"text": "An unnamed passage."}], max_new_tokens=2)
    assert anon.blocks[1].name == "" and anon.blocks[1].tier == "encoded"


def test_precompute_token_id_tuples(engine):
    a = engine.tokenize("- Title: Alpha\nThe first passage.\n")
    b = engine.tokenize("- Title: Beta\nThe second passage.\n")
    s = engine.precompute([("alpha", a), {"id": "beta", "tokens": np.array(b, dtype=np.int64)}])
    assert (s["passages"], s["encoded"], s["tokens"]) == (2, 2, len(a) + len(b))
    store = engine.store
    assert store.show("alpha", tokens=True)["token_ids"] == a
    assert {m["name"] for m in store.ls()} == {"alpha", "beta"}
    r = engine.generate("Which passage comes first?", passages=["beta", "alpha"], max_new_tokens=4)
    assert [(b.name, b.tier) for b in r.blocks[1:]] == [("beta", "store"), ("alpha", "store")]
    # The same passage as text: the same block, since the tokens are the same (a block has one name: it is
    # renamed).
    alpha = store.resolve("alpha")
    again = engine.precompute([{"id": "alpha2", "title": "Alpha", "text": "The first passage."}])
    assert again["ids"] == [alpha] and again["already_stored"] == 1 and store.show(alpha)["name"] == "alpha2"


def test_precompute_matches_the_cli(engine, corpus, cli, model_dir, tmp_path):
    ids = dict(zip((p["id"] for p in corpus), engine.precompute(corpus)["ids"]))
    cli_store = tmp_path / "cli-store"
    run_cli(cli, "precompute", "--model", model_dir, "--store", cli_store, "--corpus", CORPUS_PATH, "--json")
    assert {m["name"]: m["id"] for m in run_cli(cli, "ls", cli_store, "--json")} == ids


def test_host_tier_answers_equal_the_store(model_dir, store_dir, corpus):
    with blockkv.Engine(model=model_dir, store=store_dir, host_tier="16M", tier_policy="lru") as e:
        e.precompute(corpus)
        ids = ["harbor-001", "harbor-002", "harbor-003"]
        runs = [e.generate(QUESTION, passages=ids, max_new_tokens=12, logits=True) for _ in range(3)]
        assert [b.tier for b in runs[0].blocks[1:]] == ["store"] * 3
        assert [b.tier for b in runs[-1].blocks] == ["host"] * 4
        assert runs[-1].timing["host_hits"] == 4
        for r in runs[1:]:
            assert r.tokens == runs[0].tokens and np.array_equal(r.logits, runs[0].logits)
        tiers = e.metrics()["tiers"]
        assert tiers["host"]["blocks"] >= 4 and tiers["host"]["admitted"] >= 4


def test_sampling_and_modes(warm_engine):
    e = warm_engine
    kw = dict(passages=["harbor-005"], max_new_tokens=10, temperature=1.0, top_k=50, top_p=0.9, stop=[])
    assert e.generate(QUESTION, seed=7, **kw).tokens == e.generate(QUESTION, seed=7, **kw).tokens
    assert len(e.generate(QUESTION, seed=7, **kw).tokens) == 10  # stop=[]: no stop token
    full = e.generate(QUESTION, passages=["harbor-005"], mode="full", max_new_tokens=4)
    assert full.mode == "full" and full.blocks == [] and len(full.tokens) >= 1
    paper = e.generate(QUESTION, passages=["harbor-005"], format="paper", system="Be brief.", max_new_tokens=3)
    assert paper.blocks[1].tier == "store"
    prefill_only = e.generate(QUESTION, passages=["harbor-005"], max_new_tokens=0)
    assert prefill_only.tokens == [] and prefill_only.text == ""


def test_on_text_streams_the_answer(warm_engine):
    pieces = []
    r = warm_engine.generate(QUESTION, passages=["harbor-002"], max_new_tokens=20, stop=[], on_text=pieces.append)
    assert len(pieces) > 1 and "".join(pieces) == r.text

    calls = []

    def boom(piece):
        calls.append(piece)
        raise RuntimeError("from the callback")
    before = warm_engine.metrics()["generated_tokens"]
    with pytest.raises(RuntimeError, match="from the callback"):
        warm_engine.generate(QUESTION, passages=["harbor-002"], max_new_tokens=50, stop=[], on_text=boom)
    # Generation ended at the token whose text raised; the callable was not called again.
    assert len(calls) == 1 and warm_engine.metrics()["generated_tokens"] - before < 50


# ---- errors -------------------------------------------------------------------------------------------

def test_unknown_passage_id_names_it(warm_engine):
    with pytest.raises(blockkv.NotFoundError, match="harbor-999") as info:
        warm_engine.generate(QUESTION, passages=["harbor-001", "harbor-999"])
    assert isinstance(info.value, KeyError) and isinstance(info.value, blockkv.Error)
    assert info.value.code == "NotFound" and "harbor-999" in str(info.value)
    with pytest.raises(blockkv.NotFoundError, match="nothing-here"):
        warm_engine.store.export("nothing-here")


@pytest.mark.parametrize("call,exc", [
    (lambda e: e.generate(QUESTION, passages=[42]), TypeError),
    (lambda e: e.generate(QUESTION, passages="harbor-001"), TypeError),
    (lambda e: e.generate(QUESTION, passages=[{"title": "no text"}]), ValueError),
    (lambda e: e.generate(QUESTION, passages=[{"text": 5}]), TypeError),
    (lambda e: e.generate(None), TypeError),
    (lambda e: e.generate(QUESTION, max_new_tokens="many"), ValueError),
    (lambda e: e.generate(QUESTION, max_new_tokens=-1), ValueError),
    (lambda e: e.generate(QUESTION, stop="</s>"), TypeError),
    (lambda e: e.generate(QUESTION, stop=["x"]), TypeError),
    (lambda e: e.generate(QUESTION, mode="sideways"), ValueError),
    (lambda e: e.generate(QUESTION, format="poem"), ValueError),
    (lambda e: e.generate(QUESTION, on_text=3), TypeError),
    (lambda e: e.generate(""), ValueError),
    (lambda e: e.precompute([{"text": "no id"}]), KeyError),
    (lambda e: e.precompute([("id", "not token ids")]), TypeError),
    (lambda e: e.precompute([("id", [])]), ValueError),
    (lambda e: e.precompute([("id", [10**6])]), ValueError),  # outside the vocabulary
    (lambda e: e.precompute(["just-an-id"]), TypeError),
    (lambda e: e.precompute({"id": "x", "text": "a dict, not a list"}), TypeError),
])
def test_bad_arguments_raise(warm_engine, call, exc):
    with pytest.raises(exc):
        call(warm_engine)


def test_engine_arguments(model_dir, tmp_path):
    with pytest.raises(ValueError, match="gpu_tier"):
        blockkv.Engine(model=model_dir, gpu_tier="1G")
    with pytest.raises(ValueError, match="device"):
        blockkv.Engine(model=model_dir, device="tpu")
    with pytest.raises(ValueError, match="tier_policy"):
        blockkv.Engine(model=model_dir, tier_policy="fifo")
    with pytest.raises(ValueError, match="kv_dtype"):
        blockkv.Engine(model=model_dir, kv_dtype="int4")
    with pytest.raises(TypeError):
        blockkv.Engine(model=123)
    with pytest.raises(blockkv.Error):
        blockkv.Engine(model=tmp_path / "no-model-here")
    # No GPU here (or the tiny model's head_dim 16, which the CUDA backend refuses): a clean error either way.
    with pytest.raises(blockkv.Error, match="cuda|CUDA|head_dim"):
        blockkv.Engine(model=model_dir, device="cuda")


def test_closed_engine_and_store_raise(model_dir, store_dir):
    e = blockkv.Engine(model=model_dir, store=store_dir)
    e.close()
    e.close()
    assert e.closed
    with pytest.raises(ValueError, match="closed"):
        e.generate(QUESTION)
    s = blockkv.Store(store_dir)  # the engine let go of it
    s.close()
    with pytest.raises(ValueError, match="closed"):
        s.ls()


def test_store_is_held_by_its_engine(warm_engine, store_dir):
    with pytest.raises(blockkv.BusyError):
        blockkv.Store(store_dir)
    with blockkv.Store(store_dir, read_only=True) as ro:  # works beside the writer
        assert len(ro.ls()) == 12
        with pytest.raises(blockkv.NotSupportedError):
            ro.rm("harbor-001")
    with pytest.raises(ValueError, match="read-only"):
        blockkv.Engine(model=warm_engine.model["dir"], store=blockkv.Store(store_dir, read_only=True))


def test_engine_over_a_shared_store(model_dir, store_dir, corpus):
    with blockkv.Store(store_dir) as store:
        with blockkv.Engine(model=model_dir, store=store) as e:
            e.precompute(corpus[:3])
        assert len(store.ls()) == 3  # the store stays open after its engine closed
        with blockkv.Engine(model=model_dir, store=store) as e:
            assert e.generate(QUESTION, passages=["harbor-003"], max_new_tokens=2).blocks[1].tier == "store"


# ---- the store ----------------------------------------------------------------------------------------

def test_store_ls_stat_verify(warm_engine, store_dir, cli):
    warm_engine.generate(QUESTION, passages=["harbor-001"], max_new_tokens=2)  # stores the preamble too
    fp = warm_engine.model["fingerprint"]
    warm_engine.close()
    with blockkv.Store(store_dir) as s:
        blocks = s.ls()
        assert len(blocks) == 13 and sum(1 for b in blocks if b["name"]) == 12
        assert len(s.ls(limit=5)) == 5 and s.ls(model="0" * 32) == [] and len(s.ls(model=fp)) == 13
        st = s.stat()
        assert (st["blocks"], st["named_blocks"], st["pinned_blocks"]) == (13, 12, 0)
        assert st["tokens"] == sum(b["tokens"] for b in blocks) and st["store"] == str(store_dir)
        report = s.verify()
        assert report["ok"] and report["blocks_checked"] == 13 and report["bad_blocks"] == []
        s.pin("harbor-004")
        assert s.show("harbor-004")["pinned"] and len(s.ls(pinned_only=True)) == 1
        s.unpin("harbor-004")
        s.rm("harbor-012")
        assert "harbor-012" not in s and "harbor-011" in s and s.stat()["blocks"] == 12
    # The same dicts as `blockkv ls --json`, plus the times in microseconds.
    cli_blocks = run_cli(cli, "ls", store_dir, "--json")
    ours = blockkv.Store(store_dir, read_only=True).ls()
    assert [set(b) - {"created_micros", "last_access_micros"} for b in ours] == [set(b) for b in cli_blocks]
    for a, b in zip(ours, cli_blocks):
        assert {k: a[k] for k in b if k not in ("ratio", "last_access")} == \
            {k: b[k] for k in b if k not in ("ratio", "last_access")}


def test_export_import_round_trip(warm_engine, tmp_path, cli):
    info = warm_engine.model
    src = warm_engine.store
    x = src.export("harbor-002")
    shape = (info["layers"], x["tokens"], info["kv_heads"], info["head_dim"])
    assert x["keys"].shape == shape and x["values"].shape == shape and x["keys"].dtype == np.float32
    assert x["name"] == "harbor-002" and x["model_fingerprint"] == info["fingerprint"]
    assert len(x["token_ids"]) == x["tokens"] and np.isfinite(x["keys"]).all() and x["keys"].std() > 0

    with blockkv.Store(tmp_path / "copy") as dst:
        meta = dst.import_(x)  # the exported dict back
        assert meta["id"] == x["id"] and meta["name"] == "harbor-002" and meta["dtype"] == x["dtype"]
        y = dst.export("harbor-002")
        assert np.array_equal(x["keys"], y["keys"]) and np.array_equal(x["values"], y["values"])
        assert y["token_ids"] == x["token_ids"]
        # From plain arrays (any float dtype), stored as bf16: the values come back rounded to bf16.
        k16 = x["keys"].astype(np.float64)
        meta = dst.import_(keys=k16, values=x["values"], model_fingerprint=x["model_fingerprint"],
                           tokens=x["token_ids"][:-1] + [7], name="rounded", dtype="bf16")
        z = dst.export("rounded")
        assert meta["dtype"] == "BF16" and z["keys"].shape == shape
        assert np.allclose(z["keys"], x["keys"], rtol=2 ** -8, atol=0) and not np.array_equal(z["keys"], x["keys"])
        with pytest.raises(ValueError, match="tokens"):
            dst.import_(keys=x["keys"], values=x["values"], model_fingerprint=x["model_fingerprint"], tokens=[1])
        with pytest.raises(ValueError, match="model_fingerprint"):
            dst.import_(x, model_fingerprint="not-hex")
        with pytest.raises(TypeError):
            dst.import_(keys=x["keys"])

        # Through a safetensors exchange file, ours and the CLI's.
        f = tmp_path / "block.safetensors"
        assert src.export_file("harbor-002", f) == x["id"]
        dst.rm("harbor-002")
        assert dst.import_(f, name="from-file")["id"] == x["id"]
        assert np.array_equal(dst.export("from-file")["keys"], x["keys"])
    run_cli(cli, "export", tmp_path / "copy", "from-file", tmp_path / "cli.safetensors", "--json")
    with blockkv.Store(tmp_path / "third") as third:
        third.import_(tmp_path / "cli.safetensors")
        assert np.array_equal(third.export(x["id"])["values"], x["values"])

    # The imported block serves a prompt as the original does.
    ref = warm_engine.generate(QUESTION, passages=["harbor-002"], max_new_tokens=6)
    with blockkv.Store(tmp_path / "third") as third, \
            blockkv.Engine(model=info["dir"], store=third) as e:
        third.import_(f, name="harbor-002")
        r = e.generate(QUESTION, passages=["harbor-002"], max_new_tokens=6)
        assert r.blocks[1].tier == "store" and r.tokens == ref.tokens


# ---- metrics ------------------------------------------------------------------------------------------

def test_metrics(warm_engine):
    for _ in range(3):
        warm_engine.generate(QUESTION, passages=["harbor-001", "harbor-002"], max_new_tokens=4)
    m = warm_engine.metrics()
    assert m["requests"] == 3 and m["failed_requests"] == 0
    assert set(m["tiers"]) == {"gpu", "host", "store", "encoded"}
    assert m["tiers"]["store"]["blocks"] == 2 * 3 + 2 and m["tiers"]["encoded"]["blocks"] == 1
    assert m["ttft_ms"]["count"] == 3
    prom = warm_engine.metrics_prometheus()
    assert "blockkv_requests_total 3" in prom and "blockkv_ttft_seconds_bucket" in prom


# ---- threads ------------------------------------------------------------------------------------------

def test_four_threads_answer_as_serial_runs(warm_engine, corpus):
    ids = [p["id"] for p in corpus]
    prompts = [(f"Question {i} about {corpus[i % 12]['title']}?", [ids[i % 12], ids[(i * 5 + 1) % 12]])
               for i in range(16)]
    kw = dict(max_new_tokens=12, temperature=0.8, top_k=40, stop=[])
    serial = [warm_engine.generate(q, passages=p, seed=i, **kw).tokens for i, (q, p) in enumerate(prompts)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(warm_engine.generate, q, p, seed=i, **kw) for i, (q, p) in enumerate(prompts)]
        threaded = [f.result().tokens for f in futures]
    assert threaded == serial
    assert warm_engine.metrics()["requests"] == 32


def test_generate_releases_the_gil(warm_engine):
    # A thread that wakes every millisecond and notes the time: it needs the GIL to do so, so a call that held
    # the GIL would leave a gap as long as the call in its notes.
    stamps, stop = [], threading.Event()

    def probe():
        while not stop.is_set():
            time.sleep(0.001)
            stamps.append(time.perf_counter())
    thread = threading.Thread(target=probe)
    thread.start()
    try:
        n = 200
        while True:  # a request long enough to see: decoding grows with its length
            t0 = time.perf_counter()
            warm_engine.generate(QUESTION, passages=["harbor-002"], max_new_tokens=n, stop=[])
            t1 = time.perf_counter()
            if t1 - t0 > 0.15 or n >= 6400:
                break
            n *= 2
    finally:
        stop.set()
        thread.join()
    during = [t0] + [t for t in stamps if t0 < t < t1] + [t1]
    assert max(np.diff(during)) < (t1 - t0) / 2, (t1 - t0, max(np.diff(during)))


# ---- the retrieval example ----------------------------------------------------------------------------

def load_example():
    spec = importlib.util.spec_from_file_location("retrieval_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bm25_ranks_the_passage_that_answers_first(corpus):
    ex = load_example()
    index = ex.BM25([(p["id"], p["title"] + "\n" + p["text"]) for p in corpus])
    assert index.search("How tall is the lighthouse of Port Velland?", 3)[0][0] == "harbor-002"
    assert index.search("How long does the ferry crossing take?", 1)[0][0] == "harbor-005"
    assert index.search("What wood do the smokehouses burn?", 2)[0][0] == "harbor-008"
    assert index.search("zzz qqq", 3) == []


def test_retrieval_example_end_to_end(tmp_path, python_env):
    cmd = [sys.executable, str(EXAMPLE), "--work-dir", str(tmp_path), "--json", "--top-k", "2",
           "--question", "How tall is the lighthouse of Port Velland?", "--question", "When is the festival?"]
    first = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=python_env).stdout)
    assert first["precompute"]["encoded"] == 12
    a = first["answers"][0]
    assert [r["id"] for r in a["retrieved"]][0] == "harbor-002" and len(a["retrieved"]) == 2
    assert [b["name"] for b in a["blocks"][1:]] == [r["id"] for r in a["retrieved"]]
    assert all(b["tier"] == "store" for b in a["blocks"][1:]) and isinstance(a["text"], str)
    # A rerun over the same store encodes nothing and gives the same answers.
    second = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=python_env).stdout)
    assert second["precompute"]["already_stored"] == 12
    assert [x["text"] for x in second["answers"]] == [x["text"] for x in first["answers"]]
    # The text output names the retrieved ids and the answers.
    text = subprocess.run([sys.executable, str(EXAMPLE), "--work-dir", str(tmp_path)], check=True,
                          capture_output=True, text=True, env=python_env).stdout
    assert "retrieved: harbor-002" in text and text.count("answer: ") == 4


def test_retrieval_example_through_the_server(tmp_path, python_env, cli, model_dir):
    """The same questions through `blockkv serve` with a plain HTTP client: the same retrieval, the same
    greedy answers as the engine in this process gives over the same model."""
    log = open(tmp_path / "serve.log", "w+")
    server = subprocess.Popen([cli, "serve", "--model", str(model_dir), "--store", str(tmp_path / "served"),
                               "--port", "0", "--api-key", "k"], stderr=log)
    try:
        port = None
        for _ in range(400):
            log.seek(0)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read())
            if m:
                port = int(m.group(1))
                break
            assert server.poll() is None, "the server exited"
            time.sleep(0.05)
        assert port, "the server did not start"
        base = [sys.executable, str(EXAMPLE), "--json", "--top-k", "2", "--model", str(model_dir),
                "--question", QUESTION, "--question", "When is the festival?"]
        over_http = json.loads(subprocess.run(base + ["--server", f"http://127.0.0.1:{port}", "--api-key", "k"],
                                              check=True, capture_output=True, text=True, env=python_env).stdout)
        assert over_http["precompute"]["encoded"] == 12
        local = json.loads(subprocess.run(base + ["--work-dir", str(tmp_path / "local")], check=True,
                                          capture_output=True, text=True, env=python_env).stdout)
        for h, l in zip(over_http["answers"], local["answers"]):
            assert h["retrieved"] == l["retrieved"]
            assert [b["name"] for b in h["blocks"]] == [b["name"] for b in l["blocks"]]
            assert h["text"] == l["text"]
        # Without the key the server refuses, and the example says so.
        bad = subprocess.run(base + ["--server", f"http://127.0.0.1:{port}"], capture_output=True, text=True,
                             env={k: v for k, v in python_env.items() if k != "BLOCKKV_API_KEY"})
        assert bad.returncode != 0 and "401" in bad.stderr
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0
        log.close()
