// blockkv._blockkv._Engine: a model backend, a store and an Engine together, answering text prompts
// and precomputing passages. Every call into the engine runs with the GIL released; the Engine is
// thread-safe, so several Python threads may call generate() at once (requests then run one at a
// time on the backend).
#include <pybind11/numpy.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "attention/engine.h"
#include "attention/engine/cache_policy.h"
#include "attention/model/prompt_format.h"
#include "attention/model/tokenizer.h"
#include "attention/model_backend.h"
#include "attention/runtime.h"
#include "attention/text_prompt.h"
#include "db/dtype.h"
#include "tools/python/module.h"

#if BLOCKKV_HAVE_CUDA
#include "attention/cuda/cuda_backend.h"
#endif

namespace blockkv::python {

namespace {

// Everything one Python Engine holds. Members are destroyed in reverse order: the engine first, the
// store last.
struct EngineParts {
  std::shared_ptr<BlockStore> store;  // null: no store (block mode then encodes every block)
  std::string store_path;
  std::unique_ptr<Runtime> cpu;           // the CPU runtime (device "cpu")
  std::unique_ptr<ModelBackend> backend;  // what the engine runs on
  std::unique_ptr<Tokenizer> tokenizer;   // null when the model has no tokenizer.json
  std::vector<int32_t> stop_ids;          // the model's eos ids and its tokenizer's end-of-turn ids
  std::string device, model_dir;
  DType kv_dtype = DType::kF32;
  std::unique_ptr<Engine> engine;
};

class PyEngine {
 public:
  explicit PyEngine(std::shared_ptr<EngineParts> parts) : parts_(std::move(parts)) {}

  // The parts, kept alive for the caller's use even if close() runs meanwhile. ValueError once
  // closed.
  std::shared_ptr<EngineParts> parts() const {
    std::lock_guard<std::mutex> lock(mu_);
    if (!parts_) throw StatusError(Status::InvalidArgument("the engine is closed"));
    return parts_;
  }
  bool closed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return parts_ == nullptr;
  }
  void Close() {
    std::shared_ptr<EngineParts> p;
    {
      std::lock_guard<std::mutex> lock(mu_);
      p.swap(parts_);
    }
    py::gil_scoped_release release;  // the engine and store shut down (flushes) without the GIL
    p.reset();
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<EngineParts> parts_;
};

const Tokenizer& NeedTokenizer(const EngineParts& p, const char* what) {
  if (!p.tokenizer)
    throw StatusError(Status::InvalidArgument("model " + p.model_dir +
                                              " has no tokenizer.json: " + what + " needs one"));
  return *p.tokenizer;
}

std::unique_ptr<PyEngine> OpenEngine(const std::string& model, py::object store,
                                     const std::string& device, uint64_t gpu_tier,
                                     uint64_t host_tier, const std::string& tier_policy,
                                     const std::string& kv_dtype, const std::string& codec,
                                     bool store_misses, bool stream_layers) {
  if (device != "cpu" && device != "cuda")
    throw StatusError(
        Status::InvalidArgument("device must be 'cpu' or 'cuda', got '" + device + "'"));
  if (gpu_tier > 0 && device != "cuda")
    throw StatusError(Status::InvalidArgument("gpu_tier needs device='cuda'"));
  if (gpu_tier > 0 && !stream_layers)
    throw StatusError(
        Status::InvalidArgument("gpu_tier needs the streamed prefill (stream_layers=True)"));
  EngineOptions eo;
  const std::optional<CachePolicyKind> policy = ParseCachePolicyKind(tier_policy);
  if (!policy)
    throw StatusError(Status::InvalidArgument("tier_policy must be tinylfu, 2q or lru, got '" +
                                              tier_policy + "'"));
  eo.tier_policy = *policy;
  // As the CLI: f32 on the CPU (block mode equals the masked reference exactly), bf16 on the GPU
  // (its keys and values are bf16 already).
  if (kv_dtype.empty()) {
    eo.kv_dtype = device == "cuda" ? DType::kBF16 : DType::kF32;
  } else {
    const std::optional<DType> dt = ParseDType(kv_dtype);
    if (!dt)
      throw StatusError(
          Status::InvalidArgument("kv_dtype must be f32, bf16 or f16, got '" + kv_dtype + "'"));
    eo.kv_dtype = *dt;
  }
  eo.store_misses = store_misses;
  eo.stream_layers = stream_layers;
  eo.host_tier_bytes = host_tier;
  eo.gpu_tier_bytes = gpu_tier;

  auto p = std::make_shared<EngineParts>();
  p->device = device;
  p->model_dir = model;
  p->kv_dtype = eo.kv_dtype;
  if (py::isinstance<StoreHandle>(store)) {
    const StoreHandle& h = store.cast<const StoreHandle&>();
    std::shared_lock lock(h.mu);
    if (!h.store) throw StatusError(Status::InvalidArgument("store " + h.path + " is closed"));
    if (h.read_only)
      throw StatusError(Status::InvalidArgument("store " + h.path +
                                                " is open read-only; an engine writes to it"));
    if (!codec.empty())
      throw StatusError(Status::InvalidArgument(
          "codec belongs to the store: give it to blockkv.Store(), not to the engine over it"));
    p->store = h.store;
    p->store_path = h.path;
  } else if (!store.is_none()) {
    p->store_path = store.cast<std::string>();
  }
  StoreOptions so;
  if (!codec.empty()) {
    const std::optional<Codec> c = ParseCodec(codec);
    if (!c)
      throw StatusError(
          Status::InvalidArgument("codec must be raw or zstd-split, got '" + codec + "'"));
    so.codec = *c;
  }

  py::gil_scoped_release release;
  if (device == "cpu") {
    p->cpu = ValueOrThrow(Runtime::Open(model));
    p->backend = std::make_unique<CpuBackend>(p->cpu.get());
  } else {
#if BLOCKKV_HAVE_CUDA
    std::string why;
    if (!cuda::CudaRuntime::DeviceAvailable(&why))
      throw StatusError(Status::NotSupported("device='cuda': no usable CUDA device (" + why + ")"));
    p->backend = ValueOrThrow(cuda::CudaBackend::Open(model));
#else
    throw StatusError(
        Status::NotSupported("device='cuda': this blockkv was built without the CUDA backend"));
#endif
  }
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::path(model) / "tokenizer.json", ec))
    p->tokenizer = ValueOrThrow(Tokenizer::Load(model));
  // Generation stops at the model's eos ids and its tokenizer's end-of-turn ids, as `blockkv run`
  // does.
  p->stop_ids = p->backend->config().eos_token_ids;
  if (p->tokenizer)
    for (int32_t id : p->tokenizer->config().stop_ids)
      if (std::find(p->stop_ids.begin(), p->stop_ids.end(), id) == p->stop_ids.end())
        p->stop_ids.push_back(id);
  if (!p->store && !p->store_path.empty())
    p->store = ValueOrThrow(BlockStore::Open(p->store_path, so));
  p->engine = std::make_unique<Engine>(p->backend.get(), p->store.get(), eo);
  return std::make_unique<PyEngine>(std::move(p));
}

std::string TypeName(const py::handle& o) { return py::str(py::type::of(o).attr("__name__")); }

std::string StrField(const py::dict& d, const char* key, size_t index, bool required) {
  if (!d.contains(key)) {
    if (required) throw py::key_error("passage " + std::to_string(index) + ": no '" + key + "'");
    return "";
  }
  py::object v = d[key];
  if (v.is_none() && !required) return "";
  if (!py::isinstance<py::str>(v))
    throw py::type_error("passage " + std::to_string(index) + ": '" + key +
                         "' must be a str, got " + TypeName(v));
  return v.cast<std::string>();
}

std::vector<int32_t> TokenList(const py::handle& o, const std::string& where) {
  if (py::isinstance<py::str>(o) || py::isinstance<py::bytes>(o))
    throw py::type_error(where + ": token ids must be a sequence of ints, got " + TypeName(o));
  try {
    return o.cast<std::vector<int32_t>>();
  } catch (const py::cast_error&) {
    throw py::type_error(where + ": token ids must be a sequence of ints, got " + TypeName(o));
  }
}

// The prompt's passages: a str is a stored passage id; a mapping gives "text" (and "title", "id"),
// or only "id".
std::vector<PassageRef> ParsePassageRefs(const py::iterable& passages) {
  std::vector<PassageRef> out;
  size_t i = 0;
  for (py::handle item : passages) {
    if (py::isinstance<py::str>(item)) {
      out.push_back(PassageRef{item.cast<std::string>(), "", ""});
    } else if (py::isinstance<py::dict>(item)) {
      const py::dict d = py::reinterpret_borrow<py::dict>(item);
      PassageRef r{StrField(d, "id", i, false), StrField(d, "title", i, false),
                   StrField(d, "text", i, false)};
      if (r.id.empty() && r.text.empty())
        throw py::value_error("passage " + std::to_string(i) +
                              ": give its stored 'id' or its 'text'");
      out.push_back(std::move(r));
    } else {
      throw py::type_error("passage " + std::to_string(i) +
                           ": expected a stored id (str) or a dict with 'text', got " +
                           TypeName(item));
    }
    ++i;
  }
  return out;
}

// Passes text to a Python callable as it is generated (on the thread that runs the request, taking
// the GIL for each piece). An exception from the callable ends generation there and is raised once
// the request is done.
class TextSink {
 public:
  // Made and destroyed with the GIL held.
  TextSink(const Tokenizer* tokenizer, py::object fn)
      : stream_(tokenizer, /*skip_special_tokens=*/true), fn_(std::move(fn)) {}
  // Without the GIL.
  void Push(int32_t id) {
    std::string piece;
    Status s = stream_.Push(id, &piece);
    if (!s.ok() && status_.ok()) status_ = s;
    Emit(piece);
  }
  // Whether the callable raised (generation should stop).
  bool failed() const { return failed_; }
  // With the GIL released; then rethrows what the callable raised.
  void Finish() {
    std::string rest;
    Status s = stream_.Finish(&rest);
    if (!s.ok() && status_.ok()) status_ = s;
    Emit(rest);
    ThrowIfError(status_);
    if (error_) throw *error_;
  }

 private:
  void Emit(const std::string& piece) {
    if (piece.empty() || failed_) return;
    py::gil_scoped_acquire gil;
    try {
      fn_(py::str(piece));
    } catch (py::error_already_set& e) {
      error_.emplace(std::move(e));
      failed_ = true;
    }
  }
  TextStream stream_;
  py::object fn_;
  Status status_;
  bool failed_ = false;
  std::optional<py::error_already_set> error_;
};

py::dict Generate(const PyEngine& self, const std::string& question, const py::iterable& passages,
                  int max_new_tokens, float temperature, int top_k, float top_p, uint64_t seed,
                  const std::string& system, const py::object& stop, const std::string& mode,
                  const std::string& format, const std::optional<std::string>& passage_template,
                  bool logits, const py::object& on_text) {
  const std::shared_ptr<EngineParts> p = self.parts();
  TextPrompt prompt;
  prompt.question = question;
  prompt.system = system;
  prompt.passages = ParsePassageRefs(passages);
  if (max_new_tokens < 0) throw StatusError(Status::InvalidArgument("max_new_tokens must be >= 0"));
  if (mode != "block" && mode != "full")
    throw StatusError(
        Status::InvalidArgument("mode must be 'block' or 'full', got '" + mode + "'"));
  TextPromptOptions topts;
  if (!format.empty()) {
    topts.format = ParsePromptFormatKind(format);
    if (!topts.format)
      throw StatusError(
          Status::InvalidArgument("format must be 'chat' or 'paper', got '" + format + "'"));
  }
  if (passage_template) topts.passage_template = *passage_template;
  std::vector<int32_t> stops = p->stop_ids;
  if (!stop.is_none()) {
    if (py::isinstance<py::str>(stop))
      throw py::type_error(
          "stop takes token ids (an int or a sequence of ints); stop strings are not supported");
    stops = py::isinstance<py::int_>(stop) ? std::vector<int32_t>{stop.cast<int32_t>()}
                                           : TokenList(stop, "stop");
  }
  const Tokenizer& tokenizer = NeedTokenizer(*p, "generate");
  std::optional<TextSink> sink;
  if (!on_text.is_none()) {
    if (!PyCallable_Check(on_text.ptr()))
      throw py::type_error("on_text must be callable, got " + TypeName(on_text));
    sink.emplace(&tokenizer, on_text);
  }

  EngineRequest req;
  EngineResult r;
  std::string text;
  {
    py::gil_scoped_release release;
    req = ValueOrThrow(
        BuildTextRequest(prompt, tokenizer, p->store.get(), p->backend->fingerprint(), topts));
    req.mode = mode == "block" ? AttentionMode::kBlock : AttentionMode::kFull;
    req.decode.max_new_tokens = max_new_tokens;
    req.decode.sampling = {temperature, top_k, top_p, seed};
    req.decode.stop_token_ids = stops;
    if (sink) {
      req.decode.on_token = [&sink](int32_t id) { sink->Push(id); };
      req.decode.stop_requested = [&sink] { return sink->failed(); };
    }
    r = ValueOrThrow(p->engine->Run(req));
    if (sink) sink->Finish();
    text = ValueOrThrow(tokenizer.Decode(r.tokens, /*skip_special_tokens=*/true));
  }
  py::list blocks;
  for (size_t i = 0; i < r.block_ids.size(); ++i) {
    py::dict b;
    b["id"] = r.block_ids[i].ToHex();
    b["name"] = i < req.blocks.size() ? req.blocks[i].name : std::string();
    b["tier"] = BlockSourceName(r.block_source[i]);
    b["hit"] = bool(r.block_hit[i]);
    blocks.append(b);
  }
  py::dict d;
  d["text"] = text;
  d["tokens"] = r.tokens;
  d["blocks"] = blocks;
  d["timing"] = JsonToPython(TimingToJson(r.timing));
  d["mode"] = mode;
  d["device"] = p->backend->name();
  if (logits)
    d["logits"] = py::array_t<float>(static_cast<py::ssize_t>(r.logits.size()), r.logits.data());
  return d;
}

struct PassageIn {
  std::string id, title, text;
  std::vector<int32_t> tokens;  // given, or the text's once tokenized
};

py::dict Precompute(const PyEngine& self, const py::iterable& passages,
                    const std::optional<std::string>& passage_template) {
  const std::shared_ptr<EngineParts> p = self.parts();
  if (!p->store)
    throw StatusError(Status::InvalidArgument("precompute needs an engine with a store"));
  std::vector<PassageIn> in;
  bool any_text = false;
  size_t i = 0;
  for (py::handle item : passages) {
    PassageIn e;
    if (py::isinstance<py::dict>(item)) {
      const py::dict d = py::reinterpret_borrow<py::dict>(item);
      e.id = StrField(d, "id", i, true);
      if (d.contains("tokens")) {
        e.tokens = TokenList(d["tokens"], "passage " + e.id);
      } else {
        e.text = StrField(d, "text", i, true);
        e.title = StrField(d, "title", i, false);
        any_text = true;
      }
    } else if (py::isinstance<py::tuple>(item) && py::len(item) == 2) {
      const py::tuple t = py::reinterpret_borrow<py::tuple>(item);
      if (!py::isinstance<py::str>(t[0]))
        throw py::type_error("passage " + std::to_string(i) + ": the id must be a str, got " +
                             TypeName(t[0]));
      e.id = t[0].cast<std::string>();
      e.tokens = TokenList(t[1], "passage " + e.id);
    } else {
      throw py::type_error(
          "passage " + std::to_string(i) +
          ": expected a dict {'id', 'text', 'title'?} or an (id, token_ids) tuple, got " +
          TypeName(item));
    }
    if (e.id.empty()) throw py::value_error("passage " + std::to_string(i) + ": empty id");
    if (e.tokens.empty() && e.text.empty())
      throw py::value_error("passage " + e.id + ": no text and no tokens");
    in.push_back(std::move(e));
    ++i;
  }
  const Tokenizer* tokenizer =
      any_text ? &NeedTokenizer(*p, "precompute of text passages") : nullptr;
  const std::string tmpl =
      passage_template ? *passage_template : std::string(kDefaultPassageTemplate);
  size_t encoded = 0, present = 0, tokens = 0;
  std::vector<std::string> ids;
  double seconds = 0;
  {
    py::gil_scoped_release release;
    // Every text passage is tokenized before anything is stored (as `blockkv precompute`), so a bad
    // one stops the call cleanly.
    for (PassageIn& e : in) {
      if (e.text.empty()) continue;
      StatusOr<std::vector<int32_t>> t =
          PassageTokens(*tokenizer, tmpl, PassageRef{e.id, e.title, e.text});
      if (!t.ok()) throw StatusError(t.status().WithContext("passage " + e.id));
      if (t->empty())
        throw StatusError(
            Status::InvalidArgument("passage " + e.id + ": its text gives no tokens"));
      e.tokens = std::move(t).value();
    }
    const auto t0 = std::chrono::steady_clock::now();
    for (const PassageIn& e : in) {
      bool was = false;
      StatusOr<BlockId> id = p->engine->Precompute(e.tokens, e.id, &was);
      if (!id.ok()) throw StatusError(id.status().WithContext("passage " + e.id));
      was ? ++present : ++encoded;
      tokens += e.tokens.size();
      ids.push_back(id->ToHex());
      py::gil_scoped_acquire gil;  // let Ctrl-C stop a long corpus between passages
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  py::dict d;
  d["passages"] = in.size();
  d["encoded"] = encoded;
  d["already_stored"] = present;
  d["tokens"] = tokens;
  d["seconds"] = seconds;
  d["ids"] = ids;
  return d;
}

py::dict ModelInfo(const PyEngine& self) {
  const std::shared_ptr<EngineParts> p = self.parts();
  const ModelConfig& c = p->backend->config();
  py::dict d;
  d["dir"] = p->model_dir;
  d["fingerprint"] = p->backend->fingerprint().ToHex();
  d["layers"] = c.num_layers;
  d["hidden_size"] = c.hidden_size;
  d["heads"] = c.num_heads;
  d["kv_heads"] = c.num_kv_heads;
  d["head_dim"] = c.head_dim;
  d["vocab_size"] = c.vocab_size;
  d["stop_token_ids"] = p->stop_ids;
  d["has_tokenizer"] = p->tokenizer != nullptr;
  d["kv_dtype"] = DTypeName(p->kv_dtype);
  return d;
}

}  // namespace

void BindEngine(py::module_& m) {
  py::class_<PyEngine>(m, "_Engine")
      .def(py::init(&OpenEngine), py::arg("model"), py::arg("store") = py::none(),
           py::arg("device") = "cpu", py::arg("gpu_tier") = 0, py::arg("host_tier") = 0,
           py::arg("tier_policy") = "tinylfu", py::arg("kv_dtype") = "", py::arg("codec") = "",
           py::arg("store_misses") = true, py::arg("stream_layers") = true)
      .def("generate", &Generate, py::arg("question"), py::arg("passages") = py::tuple(),
           py::arg("max_new_tokens") = 16, py::arg("temperature") = 0.0f, py::arg("top_k") = 0,
           py::arg("top_p") = 1.0f, py::arg("seed") = 0, py::arg("system") = "",
           py::arg("stop") = py::none(), py::arg("mode") = "block", py::arg("format") = "",
           py::arg("passage_template") = py::none(), py::arg("logits") = false,
           py::arg("on_text") = py::none())
      .def("precompute", &Precompute, py::arg("passages"), py::arg("passage_template") = py::none())
      .def(
          "tokenize",
          [](const PyEngine& self, const std::string& text, bool add_special_tokens) {
            const std::shared_ptr<EngineParts> p = self.parts();
            const Tokenizer& t = NeedTokenizer(*p, "tokenize");
            py::gil_scoped_release release;
            return ValueOrThrow(t.Encode(text, add_special_tokens));
          },
          py::arg("text"), py::arg("add_special_tokens") = false)
      .def(
          "decode",
          [](const PyEngine& self, const std::vector<int32_t>& ids, bool skip_special_tokens) {
            const std::shared_ptr<EngineParts> p = self.parts();
            const Tokenizer& t = NeedTokenizer(*p, "decode");
            py::gil_scoped_release release;
            return ValueOrThrow(t.Decode(ids, skip_special_tokens));
          },
          py::arg("ids"), py::arg("skip_special_tokens") = true)
      .def("metrics",
           [](const PyEngine& self) {
             return JsonToPython(self.parts()->engine->metrics().ToJson());
           })
      .def("metrics_prometheus",
           [](const PyEngine& self) { return self.parts()->engine->metrics().ToPrometheus(); })
      .def("model_info", &ModelInfo)
      .def_property_readonly("device",
                             [](const PyEngine& self) { return self.parts()->backend->name(); })
      .def_property_readonly("closed", &PyEngine::closed)
      .def("store_handle",
           [](const PyEngine& self) -> py::object {
             const std::shared_ptr<EngineParts> p = self.parts();
             if (!p->store) return py::none();
             auto h = std::make_shared<StoreHandle>();
             h->store = p->store;
             h->path = p->store_path;
             return py::cast(h);
           })
      .def("close", &PyEngine::Close);
}

}  // namespace blockkv::python
