"""blockkv: an embedded KV-cache database and runtime for Block-Attention RAG.

A prompt is a list of blocks: a system block, one block per retrieved passage, and a final block with the
question. Every passage block attends only to itself, so its keys and values are computed once (offline,
with :meth:`Engine.precompute`), stored under the passage id, and reused at any position of any later
prompt; :meth:`Engine.generate` then prefills only the question.

    import blockkv
    model = blockkv.make_model("/tmp/model")                 # a synthetic model with its tokenizer
    with blockkv.Engine(model=model, store="/tmp/store") as engine:
        engine.precompute([{"id": "doc-1", "title": "Port Velland", "text": "..."}])
        result = engine.generate("How tall is the lighthouse?", passages=["doc-1"])
        print(result.text, [b.tier for b in result.blocks])

Every call into blockkv releases the GIL; an Engine may be used from several threads at once (its requests
run one at a time on the model). Errors are raised as :class:`Error` subclasses carrying blockkv's message.
See docs/python.md.
"""

from __future__ import annotations

import datetime as _datetime
import os as _os
import re as _re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

from . import _blockkv

__all__ = [
    "Engine", "Store", "Result", "Block", "make_model", "parse_size", "__version__", "have_cuda",
    "Error", "NotFoundError", "InvalidArgumentError", "CorruptionError", "NotSupportedError", "BusyError",
    "ResourceExhaustedError",
]

__version__: str = _blockkv.version()
#: Whether this build has the CUDA backend (device="cuda" still needs a usable GPU).
have_cuda: bool = bool(_blockkv.have_cuda)

PathLike = Union[str, "_os.PathLike[str]"]


# ---- errors --------------------------------------------------------------------------------------------

class Error(RuntimeError):
    """A blockkv error. ``code`` is blockkv's status code ("NotFound", "Corruption", "IOError", ...); the
    message names the thing that failed (the passage id, the block, the file)."""

    code: str = "Internal"

    def __init__(self, message: str = "", code: Optional[str] = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:  # KeyError, a base of NotFoundError, would quote the message
        return self.message


class NotFoundError(Error, KeyError):
    """Something named is not there: a passage id that is not stored, a block, a model file."""
    code = "NotFound"


class InvalidArgumentError(Error, ValueError):
    """A bad argument or a malformed input (also raised for a closed Engine or Store)."""
    code = "InvalidArgument"


class CorruptionError(Error):
    """Stored data failed its checksum (damaged data is never used)."""
    code = "Corruption"


class NotSupportedError(Error, NotImplementedError):
    """Not supported here: e.g. device="cuda" without a usable GPU, or writing to a read-only store."""
    code = "NotSupported"


class BusyError(Error):
    """The store is locked by another writer (one process may write to a store)."""
    code = "Busy"


class ResourceExhaustedError(Error):
    """Out of space: a block that does not fit in the store's byte budget, or no device memory."""
    code = "ResourceExhausted"


_blockkv._register_errors({
    "NotFound": NotFoundError, "InvalidArgument": InvalidArgumentError, "Corruption": CorruptionError,
    "NotSupported": NotSupportedError, "Busy": BusyError, "ResourceExhausted": ResourceExhaustedError,
    "IOError": Error, "Internal": Error,
})


# ---- sizes ---------------------------------------------------------------------------------------------

_SIZE = _re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMGT]?)(I?B)?\s*$", _re.IGNORECASE)


def parse_size(value: Union[int, str, None]) -> int:
    """Bytes from an int or a string as the CLI takes them: "4096", "512M", "1.5G", "8GiB" (K, M, G, T are
    powers of 1024). None is 0."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise TypeError("a size must be an int or a str like '8G', got bool")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size must not be negative, got {value}")
        return value
    if not isinstance(value, str):
        raise TypeError(f"a size must be an int or a str like '8G', got {type(value).__name__}")
    m = _SIZE.match(value)
    if not m or (m.group(3) and m.group(3).upper() == "IB" and not m.group(2)):
        raise ValueError(f"'{value}' is not a size (examples: 4096, 512M, 1.5G)")
    mult = 1024 ** " KMGT".index(m.group(2).upper() or " ")
    return int(float(m.group(1)) * mult)


def _path(p: Optional[PathLike], what: str) -> Optional[str]:
    if p is None:
        return None
    if isinstance(p, (str, _os.PathLike)):
        return _os.fspath(p)
    raise TypeError(f"{what} must be a path (str or os.PathLike), got {type(p).__name__}")


def _utc(micros: int) -> str:
    t = _datetime.datetime.fromtimestamp(micros / 1e6, tz=_datetime.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _meta(d: dict) -> dict:
    """A block's metadata as `blockkv ls --json` prints it (plus the times in microseconds)."""
    d["created"] = _utc(d["created_micros"])
    d["last_access"] = _utc(d["last_access_micros"])
    return d


# ---- results -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Block:
    """One block of a prompt: block 0 is the system preamble, then one per passage."""
    id: str      #: the block id (32 hex digits)
    name: str    #: the passage id it is stored under ("" for the preamble or an unnamed text passage)
    tier: str    #: where it came from: "gpu", "host", "store" or "encoded" (a miss, encoded now)
    hit: bool    #: served from a tier or the store (not encoded)


@dataclass(frozen=True)
class Result:
    """What :meth:`Engine.generate` returns."""
    text: str                      #: the answer, decoded (special tokens skipped)
    tokens: list                   #: the generated token ids
    blocks: list                   #: a :class:`Block` per non-final block, in prompt order
    timing: dict                   #: milliseconds and counts, as `blockkv run --json`'s "timing"
    mode: str = "block"            #: "block" or "full"
    device: str = "cpu"            #: the backend that answered
    logits: Any = field(default=None, repr=False)  #: float32 numpy array (vocab,) when asked for

    def __str__(self) -> str:
        return self.text


# ---- the store -----------------------------------------------------------------------------------------

class Store:
    """A blockkv store (a directory): list, inspect, verify, export and import blocks.

    ``Store(path)`` opens it for writing, creating it if missing (``create=False`` refuses). One process may
    write to a store at a time, so an :class:`Engine` open on the same directory holds it: use
    ``engine.store`` then, or ``read_only=True``, which opens a view as of now that works beside a live
    writer (:meth:`refresh` moves it forward). Blocks are named by their id (32 hex digits) or by name
    (the passage id). Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: PathLike, read_only: bool = False, *, create: bool = True,
                 codec: Optional[str] = None, _impl: Any = None):
        if _impl is not None:
            self._impl = _impl
            return
        self._impl = _blockkv._Store(_path(path, "path"), bool(read_only), bool(create), codec or "")

    @property
    def path(self) -> str:
        return self._impl.path

    @property
    def read_only(self) -> bool:
        return self._impl.read_only

    @property
    def closed(self) -> bool:
        return self._impl.closed

    def close(self) -> None:
        """Closes the store (flushing it). Calls still running finish first. Idempotent."""
        self._impl.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("read-only" if self.read_only else "read-write")
        return f"blockkv.Store({self.path!r}, {state})"

    def ls(self, model: Optional[str] = None, pinned_only: bool = False, limit: int = 0) -> list:
        """Every block's metadata (a list of dicts, as `blockkv ls --json`), in id order. ``model``: only
        blocks of this model fingerprint (32 hex digits); ``limit``: at most this many (0: all)."""
        return [_meta(d) for d in self._impl.ls(model, bool(pinned_only), int(limit))]

    def show(self, ref: str, tokens: bool = False) -> dict:
        """One block's metadata; ``tokens=True`` adds its token ids ("token_ids"). NotFoundError if absent."""
        return _meta(self._impl.show(ref, bool(tokens)))

    def resolve(self, ref: str) -> str:
        """The block id (hex) of a name or id."""
        return self._impl.resolve(ref)

    def __contains__(self, ref: str) -> bool:
        try:
            self._impl.show(ref, False)
            return True
        except NotFoundError:
            return False

    def stat(self) -> dict:
        """Totals and disk usage (the keys of `blockkv stat --json`)."""
        d = self._impl.stat()
        d["store"] = self.path
        return d

    def verify(self) -> dict:
        """Decodes and checksums every stored value and checks RocksDB's file checksums. Returns
        ``{"ok", "blocks_checked", "values_checked", "bytes_checked", "bad_blocks": [{"id", "problem"}],
        "file_problems"}``; damage is reported there, not raised."""
        return self._impl.verify()

    def export(self, ref: str) -> dict:
        """One block as numpy arrays: ``"keys"`` and ``"values"``, float32 of shape (layers, tokens, kv_heads,
        head_dim) (keys before RoPE, exactly as stored, converted from the stored dtype), with its metadata:
        "id", "name", "model_fingerprint", "token_ids", "dtype", ... (:meth:`import_` takes the dict back)."""
        return _meta(self._impl.export(ref))

    def export_file(self, ref: str, path: PathLike) -> str:
        """Writes one block to a safetensors exchange file (as `blockkv export`); returns its id."""
        return self._impl.export_file(ref, _path(path, "path"))

    def import_(self, source: Union[PathLike, Mapping, None] = None, *, keys: Any = None, values: Any = None,
                model_fingerprint: Optional[str] = None, tokens: Optional[Sequence[int]] = None,
                name: Optional[str] = None, dtype: Optional[str] = None, pin: bool = False) -> dict:
        """Stores one block and returns its metadata. The block comes from

        - a safetensors exchange file (``source`` a path), as `blockkv import` reads it: tensors
          ``k.{layer}``/``v.{layer}`` of shape (tokens, kv_heads, head_dim) and ``__metadata__`` with
          ``model_fingerprint`` and ``tokens``;
        - a dict as :meth:`export` returns (``source`` a mapping): its keys, values, model_fingerprint,
          token_ids, name and dtype; keyword arguments override them;
        - keyword arguments alone: ``keys`` and ``values`` (arrays of shape (layers, tokens, kv_heads,
          head_dim), converted to float32), ``model_fingerprint`` (32 hex digits) and ``tokens``.

        ``dtype`` ("f32", "bf16", "f16"; default the source's, else f32) is how it is stored. ``name`` names
        it (moving the name from another block); ``pin`` pins it. A block already present keeps its data and
        only takes the name and pin.
        """
        if isinstance(source, (str, _os.PathLike)):
            if keys is not None or values is not None or tokens is not None or model_fingerprint is not None:
                raise TypeError("import_ takes a file or arrays, not both")
            return _meta(self._impl.import_file(_os.fspath(source), name or "", bool(pin)))
        if source is not None:
            if not isinstance(source, Mapping):
                raise TypeError(f"import_ takes a path, a dict as export() returns, or keyword arrays; got "
                                f"{type(source).__name__}")
            keys = source["keys"] if keys is None else keys
            values = source["values"] if values is None else values
            model_fingerprint = model_fingerprint or source.get("model_fingerprint")
            if tokens is None:
                tokens = source.get("token_ids")
                if tokens is None and not isinstance(source.get("tokens"), int):
                    tokens = source.get("tokens")
            name = source.get("name", "") if name is None else name
            dtype = dtype or source.get("dtype")
        missing = [k for k, v in (("keys", keys), ("values", values), ("model_fingerprint", model_fingerprint),
                                  ("tokens", tokens)) if v is None]
        if missing:
            raise TypeError("import_ needs " + ", ".join(missing))
        return _meta(self._impl.import_arrays(keys, values, model_fingerprint, [int(t) for t in tokens],
                                              name or "", (dtype or "f32"), bool(pin)))

    def rm(self, ref: str) -> None:
        """Removes a block (NotFoundError if absent)."""
        self._impl.rm(ref)

    def pin(self, ref: str) -> None:
        """Pins a block: eviction never takes it."""
        self._impl.pin(ref)

    def unpin(self, ref: str) -> None:
        self._impl.unpin(ref)

    def compact(self) -> None:
        """Compacts the store so that space freed by removals returns to the file system."""
        self._impl.compact()

    def refresh(self) -> None:
        """Read-only stores: catches up with the writer's latest writes (a no-op for a writer)."""
        self._impl.refresh()


# ---- the engine ----------------------------------------------------------------------------------------

PassageSpec = Union[str, Mapping[str, str]]


class Engine:
    """A model and a store together: precompute passages, answer questions over them.

    ``model``: a Hugging Face style model directory (config.json, safetensors weights, and tokenizer.json for
    text). ``store``: the store directory (created if missing; opened for writing), a :class:`Store` opened
    for writing (shared), or None (every passage is then encoded per request). ``device``: "cpu" or
    "cuda" (NotSupportedError when this build or machine has no usable GPU). ``host_tier`` and ``gpu_tier``
    (bytes, or sizes like "2G"; gpu_tier needs cuda, else ValueError) keep popular blocks in host and GPU
    memory across requests behind ``tier_policy`` ("tinylfu", "2q" or "lru"). ``kv_dtype`` ("f32", "bf16",
    "f16"; default f32 on cpu, bf16 on cuda) is how new blocks are stored; ``codec`` ("zstd-split" or "raw")
    how they are compressed.

    Thread-safe: any number of threads may call :meth:`generate` and :meth:`precompute` at once; the GIL is
    released while blockkv works, and requests run one at a time on the model. Use as a context manager,
    or call :meth:`close`.
    """

    def __init__(self, model: PathLike, store: Union[PathLike, Store, None] = None, device: str = "cpu",
                 gpu_tier: Union[int, str, None] = 0, host_tier: Union[int, str, None] = 0, *,
                 tier_policy: str = "tinylfu", kv_dtype: Optional[str] = None, codec: Optional[str] = None,
                 store_misses: bool = True, stream_layers: bool = True):
        if not isinstance(device, str):
            raise TypeError(f"device must be 'cpu' or 'cuda', got {type(device).__name__}")
        store_arg = store._impl if isinstance(store, Store) else _path(store, "store")
        self._impl = _blockkv._Engine(_path(model, "model"), store_arg, device, parse_size(gpu_tier),
                                      parse_size(host_tier), tier_policy, kv_dtype or "", codec or "",
                                      bool(store_misses), bool(stream_layers))

    def close(self) -> None:
        """Closes the engine and its store (unless the store was a :class:`Store` given to it, which stays
        open). Requests still running finish first. Idempotent."""
        self._impl.close()

    @property
    def closed(self) -> bool:
        return self._impl.closed

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return "blockkv.Engine(closed)"
        info = self._impl.model_info()
        return f"blockkv.Engine(model={info['dir']!r}, device={self.device!r})"

    @property
    def device(self) -> str:
        """"cpu", or "cuda (<device name>)"."""
        return self._impl.device

    @property
    def model(self) -> dict:
        """The model: dir, fingerprint, layers, hidden_size, heads, kv_heads, head_dim, vocab_size,
        stop_token_ids, has_tokenizer, kv_dtype."""
        return self._impl.model_info()

    @property
    def store(self) -> Optional[Store]:
        """The engine's store as a :class:`Store` (the same open store; closing it leaves the engine's
        open), or None."""
        h = self._impl.store_handle()
        return None if h is None else Store(h.path, _impl=h)

    def precompute(self, passages: Iterable[Union[Mapping[str, Any], tuple]], *,
                   passage_template: Optional[str] = None) -> dict:
        """Encodes and stores every passage not stored yet, under its id, as `blockkv precompute` does.

        Each passage is a dict ``{"id", "text", "title"?}`` (formatted with the passage template, default
        ``"- Title: {title}\\n{text}\\n"``, and tokenized with the model's tokenizer) or ``{"id", "tokens"}``,
        or an ``(id, token_ids)`` tuple (stored as given). Text passages are all tokenized before anything is
        stored. Returns ``{"passages", "encoded", "already_stored", "tokens", "seconds", "ids"}`` (ids: each
        passage's block id, in order)."""
        if isinstance(passages, (str, bytes, Mapping)):
            raise TypeError("precompute takes an iterable of passages (dicts or (id, token_ids) tuples)")
        return self._impl.precompute(list(passages), passage_template)

    def generate(self, question: str, passages: Iterable[PassageSpec] = (), *, max_new_tokens: int = 16,
                 temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, seed: int = 0,
                 system: Optional[str] = None, stop: Union[int, Sequence[int], None] = None,
                 mode: str = "block", format: Optional[str] = None, passage_template: Optional[str] = None,
                 logits: bool = False, on_text: Optional[Callable[[str], Any]] = None) -> Result:
        """Answers ``question`` over ``passages`` and returns a :class:`Result`.

        A passage is a stored passage id (its block and tokens come from the store; NotFoundError naming it
        when it is not stored for this model) or a dict ``{"text", "title"?, "id"?}`` (formatted and
        tokenized; with an id it is stored under it when it is a miss). ``system``: the system text.
        Sampling: greedy by default; ``temperature``, ``top_k``, ``top_p`` and ``seed`` as usual (equal
        seeds give equal answers). ``stop``: token ids that end generation (default: the model's eos ids
        and its tokenizer's end-of-turn ids; ``[]``: none). ``mode="full"`` runs ordinary causal attention
        over the whole prompt (the baseline). ``format``: "chat" (the model's chat template) or "paper"
        (Block-Attention's format); default chat when the model has a template. ``logits=True`` adds the
        last position's logits. ``on_text`` is called with each piece of text as it is generated (from the
        calling thread, holding the GIL for the call); what it raises stops the generation there and is
        raised once the request ends.
        """
        if not isinstance(question, str):
            raise TypeError(f"question must be a str, got {type(question).__name__}")
        if isinstance(passages, (str, bytes, Mapping)):
            raise TypeError("passages must be an iterable of passage ids or dicts, not a single "
                            f"{type(passages).__name__}")
        d = self._impl.generate(question, list(passages), int(max_new_tokens), float(temperature), int(top_k),
                                float(top_p), int(seed), system or "", stop, mode, format or "",
                                passage_template, bool(logits), on_text)
        return Result(text=d["text"], tokens=list(d["tokens"]),
                      blocks=[Block(b["id"], b["name"], b["tier"], b["hit"]) for b in d["blocks"]],
                      timing=d["timing"], mode=d["mode"], device=d["device"], logits=d.get("logits"))

    def tokenize(self, text: str, add_special_tokens: bool = False) -> list:
        """The model tokenizer's ids for ``text`` (as Hugging Face `tokenizers` gives them)."""
        return self._impl.tokenize(text, bool(add_special_tokens))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """The text of token ids."""
        return self._impl.decode([int(i) for i in ids], bool(skip_special_tokens))

    def metrics(self) -> dict:
        """Counters per tier and latency percentiles of every request so far (EngineMetrics as JSON)."""
        return self._impl.metrics()

    def metrics_prometheus(self) -> str:
        """The same in the Prometheus text exposition format."""
        return self._impl.metrics_prometheus()


# ---- models --------------------------------------------------------------------------------------------

def make_model(dir: PathLike, preset: str = "tiny", seed: int = 1, *, arch: Optional[str] = None,
               dtype: str = "bf16", layers: Optional[int] = None, heads: Optional[int] = None,
               kv_heads: Optional[int] = None, head_dim: Optional[int] = None) -> str:
    """Writes a synthetic model (config.json, safetensors weights with deterministic random weights,
    generation_config.json, tokenizer.json and tokenizer_config.json) into ``dir``, as `blockkv make-model`
    does, and returns the directory. Presets: "tiny" and "small" (test-sized; ``arch`` "llama3" (default),
    "llama2", "mistral" or "qwen2") and the full-size shapes "llama-3.1-8b", "llama-2-7b", "mistral-7b",
    "qwen2-7b". The weights are random: the answers are noise, the path is real. ``layers``, ``heads``,
    ``kv_heads``, ``head_dim`` override the preset (the CUDA backend takes head_dim 64 or 128)."""
    return _blockkv.make_model(_path(dir, "dir"), preset, int(seed), arch or "", dtype, layers, heads, kv_heads,
                               head_dim)
