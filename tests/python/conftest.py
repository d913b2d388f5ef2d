"""Fixtures of the blockkv Python suite: a synthetic model, the shipped corpus, engines over fresh stores.

Run with the module on the path: PYTHONPATH=build/tools/python /usr/bin/python3 -m pytest -q tests/python
(CTest's `python` test does that, and sets BLOCKKV_CLI to the CLI for the comparisons with it).
"""

import json
import os
from pathlib import Path

import pytest

import blockkv

REPO = Path(__file__).resolve().parents[2]
CORPUS_PATH = REPO / "attention" / "model" / "demo_corpus.jsonl"
EXAMPLE = REPO / "tools" / "python" / "examples" / "retrieval.py"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """The tiny synthetic model (llama3 family, with tokenizer), f32 weights as the CLI's demo uses."""
    return blockkv.make_model(tmp_path_factory.mktemp("model") / "tiny", preset="tiny", seed=1, dtype="f32")


@pytest.fixture(scope="session")
def corpus():
    with open(CORPUS_PATH, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def engine(model_dir, store_dir):
    with blockkv.Engine(model=model_dir, store=store_dir) as e:
        yield e


@pytest.fixture
def warm_engine(engine, corpus):
    """An engine whose store holds the whole corpus."""
    engine.precompute(corpus)
    return engine


@pytest.fixture(scope="session")
def cli():
    """The blockkv CLI (BLOCKKV_CLI, else build/tools/blockkv), or a skip saying why."""
    path = os.environ.get("BLOCKKV_CLI") or str(REPO / "build" / "tools" / "blockkv")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip(f"the blockkv CLI is not at {path} (set BLOCKKV_CLI): comparison with it skipped")
    return path


@pytest.fixture(scope="session")
def python_env():
    """The environment for a child interpreter that imports this same blockkv."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(blockkv.__file__).resolve().parents[1])] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env
