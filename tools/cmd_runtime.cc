// Runtime commands: make-model, precompute, run, demo.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <unistd.h>

#include "attention/engine.h"
#include "attention/prompt_file.h"
#include "attention/reference.h"
#include "attention/synthetic_model.h"
#include "tools/cli_util.h"
#include "tools/commands.h"
#include "tools/npy.h"

#if BLOCKKV_HAVE_CUDA
#include "attention/cuda/cuda_backend.h"
#endif

namespace blockkv::cli {

namespace {

// The model runtime `device` names ("cpu" or "cuda") for the model in `model_dir`.
struct Backend {
  std::unique_ptr<Runtime> cpu;           // the CPU runtime, when device is cpu
  std::unique_ptr<ModelBackend> backend;  // what the Engine runs on
};

Backend OpenBackend(const std::string& device, const std::string& model_dir) {
  Backend b;
  if (device == "cpu") {
    b.cpu = Check(Runtime::Open(model_dir));
    b.backend = std::make_unique<CpuBackend>(b.cpu.get());
    return b;
  }
#if BLOCKKV_HAVE_CUDA
  std::string why;
  if (!cuda::CudaRuntime::DeviceAvailable(&why)) Fail("--device cuda: no usable CUDA device (" + why + ")");
  b.backend = Check(cuda::CudaBackend::Open(model_dir));
  return b;
#else
  Fail("--device cuda: this blockkv was built without the CUDA backend (nvcc not found at configure time)");
#endif
}

void AddDeviceOption(CLI::App* sub, std::string* device) {
  sub->add_option("--device", *device,
                  "cpu (the reference backend) or cuda (the GPU backend: bf16 weights, activations and KV on the "
                  "device; stored blocks stream in layer by layer during the prefill and are re-encoded there; "
                  "sampling runs there too)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
}

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

nlohmann::json TimingJson(const EngineTiming& t) {
  return {{"lookup_ms", t.lookup_ms}, {"load_ms", t.load_ms},       {"encode_ms", t.encode_ms},
          {"prefill_ms", t.prefill_ms}, {"ttft_ms", t.ttft_ms},     {"decode_ms", t.decode_ms},
          {"store_ms", t.store_ms},   {"hits", t.hits},             {"misses", t.misses},
          {"bytes_loaded", t.bytes_loaded}, {"prompt_tokens", t.prompt_tokens},
          {"generated_tokens", t.generated_tokens}, {"streamed", t.streamed}, {"stream_wait_ms", t.stream_wait_ms}};
}

// --kv-dtype; "" (the default) is f32 on the CPU (block mode then equals the masked reference exactly)
// and bf16 on the GPU (its keys and values are bf16 already: stored losslessly in half the bytes).
DType ParseKvDType(const std::string& s, const std::string& device) {
  if (s.empty()) return device == "cuda" ? DType::kBF16 : DType::kF32;
  auto d = ParseDType(s);
  if (!d) Fail("--kv-dtype must be f32, bf16 or f16, got '" + s + "'");
  return *d;
}

void RegisterMakeModel(CLI::App& app) {
  struct Opts {
    std::string preset = "tiny", arch, out, dtype = "bf16";
    uint64_t seed = 0;
    bool rope_parameters = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "make-model",
      "Write a synthetic HF model directory (config.json + safetensors) with deterministic random weights,\n"
      "loadable by blockkv and by HF transformers' from_pretrained. tiny/small are test- and demo-sized;\n"
      "the full-size presets copy the real models' shapes (their files are large).");
  sub->add_option("--preset", o->preset, "One of: " + Join(SyntheticPresetNames(), ", "))->capture_default_str();
  sub->add_option("--arch", o->arch, "For tiny/small: " + Join(SyntheticArchNames(), ", ") + " (default llama3)");
  sub->add_option("--seed", o->seed, "Seed of the weights")->capture_default_str();
  sub->add_option("--dtype", o->dtype, "Weight dtype: bf16, f16 or f32")->capture_default_str();
  sub->add_flag("--rope-parameters", o->rope_parameters, "Write transformers-5 style rope_parameters");
  sub->add_option("--out", o->out, "Output directory")->required();
  sub->callback([o] {
    SyntheticModelSpec spec = Check(SyntheticPreset(o->preset, o->arch));
    spec.seed = o->seed;
    auto dt = ParseDType(o->dtype);
    if (!dt) Fail("--dtype must be bf16, f16 or f32, got '" + o->dtype + "'");
    spec.dtype = *dt;
    spec.rope_parameters_style = o->rope_parameters;
    Check(WriteSyntheticModel(spec, o->out));
    std::printf("wrote %s model (%d layers, hidden %d, %d heads / %d kv heads, head_dim %d, vocab %d) to %s\n",
                o->preset.c_str(), spec.num_layers, spec.hidden_size, spec.num_heads, spec.num_kv_heads,
                spec.head_dim, spec.vocab_size, o->out.c_str());
  });
}

void RegisterPrecompute(CLI::App& app) {
  struct Opts {
    std::string model, store, corpus, kv_dtype, device = "cpu", codec;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "precompute",
      "Encode every passage of a corpus (JSON Lines: {\"id\": \"...\", \"tokens\": [ids...]} per line) and\n"
      "store its KV block, skipping passages already stored. Safe to interrupt and rerun.");
  sub->add_option("--model", o->model, "HF model directory")->required();
  sub->add_option("--store", o->store, "Store directory (created if missing)")->required();
  sub->add_option("--corpus", o->corpus, "Passages, JSON Lines")->required();
  sub->add_option("--kv-dtype", o->kv_dtype, "Stored KV dtype: f32, bf16, f16 (default: f32 on cpu, bf16 on cuda)");
  AddCodecOption(sub, &o->codec);
  AddDeviceOption(sub, &o->device);
  sub->add_flag("--json", o->json, "Print a JSON summary");
  sub->callback([o] {
    auto passages = Check(ReadCorpusFile(o->corpus));
    Backend backend = OpenBackend(o->device, o->model);
    auto store = OpenForWrite(o->store, /*create=*/true, o->codec);
    EngineOptions eo;
    eo.kv_dtype = ParseKvDType(o->kv_dtype, o->device);
    Engine engine(backend.backend.get(), store.get(), eo);
    size_t encoded = 0, present = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const bool progress = isatty(2) && !o->json;
    for (size_t i = 0; i < passages.size(); ++i) {
      bool was = false;
      Check(engine.Precompute(passages[i].tokens, passages[i].name, &was).status());
      was ? ++present : ++encoded;
      if (progress)
        std::fprintf(stderr, "\r%zu/%zu passages (%zu encoded, %zu already stored)", i + 1, passages.size(),
                     encoded, present);
    }
    if (progress) std::fprintf(stderr, "\n");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    StoreStats st = Check(store->GetStats());
    if (o->json) {
      PrintJson({{"passages", passages.size()}, {"encoded", encoded}, {"already_stored", present},
                 {"seconds", secs}, {"store", StatsToJson(st)}});
    } else {
      std::printf("%zu passages: %zu encoded and stored, %zu already stored (%.2f s); store holds %llu blocks, %s\n",
                  passages.size(), encoded, present, secs, static_cast<unsigned long long>(st.blocks),
                  FormatBytes(st.stored_bytes).c_str());
    }
  });
}

struct RunOpts {
  std::string model, store, prompt, mode = "block", logits_out, kv_dtype, device = "cpu", codec;
  int max_new_tokens = 16;
  bool all_logits = false, json = false, no_store = false, no_stream = false;
  float temperature = 0, top_p = 1;
  int top_k = 0;
  uint64_t seed = 0;
  std::vector<int32_t> stop;
};

void RegisterRun(CLI::App& app) {
  auto o = std::make_shared<RunOpts>();
  CLI::App* sub = app.add_subcommand(
      "run",
      "Answer a prompt given as token ids: {\"blocks\": [[ids...], ..., [final ids...]], \"names\": [...]}.\n"
      "Block mode loads each stored block (encoding and storing misses), re-encodes positions and prefills\n"
      "only the final block; full mode prefills the whole prompt with causal attention (the baseline).");
  sub->add_option("--model", o->model, "HF model directory")->required();
  sub->add_option("--store", o->store, "Store directory (created if missing; needed in block mode)");
  sub->add_option("--prompt", o->prompt, "Prompt file (JSON)")->required();
  sub->add_option("--mode", o->mode, "block or full")->capture_default_str()->check(CLI::IsMember({"block", "full"}));
  sub->add_option("--max-new-tokens", o->max_new_tokens, "Tokens to generate (0: prefill only)")->capture_default_str();
  sub->add_option("--temperature", o->temperature, "0 = greedy")->capture_default_str();
  sub->add_option("--top-k", o->top_k, "Sample among the k most likely (0 = all)")->capture_default_str();
  sub->add_option("--top-p", o->top_p, "Nucleus sampling threshold")->capture_default_str();
  sub->add_option("--seed", o->seed, "Sampling seed")->capture_default_str();
  sub->add_option("--stop", o->stop, "Stop token ids (default: the model's eos_token_id)");
  sub->add_option("--logits-out", o->logits_out, "Write float32 .npy logits: (vocab,) for the last position");
  sub->add_flag("--all-logits", o->all_logits, "With --logits-out: (final_tokens, vocab), every final-block position");
  sub->add_option("--kv-dtype", o->kv_dtype,
                  "Dtype of blocks stored on a miss: f32, bf16, f16 (default: f32 on cpu, bf16 on cuda)");
  sub->add_flag("--no-store", o->no_store, "Do not store blocks that were missing");
  AddCodecOption(sub, &o->codec);
  AddDeviceOption(sub, &o->device);
  sub->add_flag("--no-stream", o->no_stream,
                "On cuda: load every stored block before the prefill instead of streaming them in layer by "
                "layer while it runs (same logits; for comparison)");
  sub->add_flag("--json", o->json, "Print JSON");
  sub->callback([o] {
    PromptFile pf = Check(ReadPromptFile(o->prompt));
    Backend backend = OpenBackend(o->device, o->model);
    const ModelConfig& config = backend.backend->config();
    std::unique_ptr<BlockStore> store;
    const bool block = o->mode == "block";
    if (block) {
      if (o->store.empty()) Fail("block mode needs --store (use --mode full to run without one)");
      store = OpenForWrite(o->store, /*create=*/true, o->codec);
    }
    EngineOptions eo;
    eo.kv_dtype = ParseKvDType(o->kv_dtype, o->device);
    eo.store_misses = !o->no_store;
    eo.stream_layers = !o->no_stream;
    Engine engine(backend.backend.get(), store.get(), eo);
    EngineRequest req;
    req.blocks = pf.blocks;
    req.final_tokens = pf.final_tokens;
    req.mode = block ? AttentionMode::kBlock : AttentionMode::kFull;
    req.prefill.all_logits = o->all_logits;
    req.decode.max_new_tokens = o->max_new_tokens;
    req.decode.sampling = {o->temperature, o->top_k, o->top_p, o->seed};
    req.decode.stop_token_ids = o->stop.empty() ? config.eos_token_ids : o->stop;
    EngineResult r = Check(engine.Run(req));
    if (!o->logits_out.empty()) {
      const int64_t vocab = config.vocab_size;
      std::vector<int64_t> shape = o->all_logits ? std::vector<int64_t>{int64_t(r.logits.size()) / vocab, vocab}
                                                 : std::vector<int64_t>{vocab};
      Check(WriteNpy(o->logits_out, r.logits, shape));
    }
    if (o->json) {
      nlohmann::json ids = nlohmann::json::array();
      for (size_t i = 0; i < r.block_ids.size(); ++i) ids.push_back({{"id", r.block_ids[i].ToHex()}, {"hit", bool(r.block_hit[i])}});
      PrintJson({{"mode", o->mode}, {"device", backend.backend->name()}, {"tokens", r.tokens}, {"blocks", ids},
                 {"timing", TimingJson(r.timing)}});
      return;
    }
    const auto& t = r.timing;
    std::printf("generated:");
    for (int32_t tok : r.tokens) std::printf(" %d", tok);
    std::printf("\n%s mode on %s, %d prompt tokens, %d hits / %d misses\n", o->mode.c_str(),
                backend.backend->name().c_str(), t.prompt_tokens, t.hits, t.misses);
    if (t.streamed) {
      std::printf("lookup %.2f ms, encode %.2f ms, prefill with the hits streamed in %.2f ms (reads %.2f ms over the "
                  "reader threads, prefill waited %.2f ms for them) -> first token %.2f ms; decode %.2f ms",
                  t.lookup_ms, t.encode_ms, t.prefill_ms, t.load_ms, t.stream_wait_ms, t.ttft_ms, t.decode_ms);
    } else {
      std::printf("lookup %.2f ms, load %.2f ms, encode %.2f ms, prefill %.2f ms -> first token %.2f ms; decode %.2f ms",
                  t.lookup_ms, t.load_ms, t.encode_ms, t.prefill_ms, t.ttft_ms, t.decode_ms);
    }
    if (t.store_ms > 0) std::printf("; stored misses %.2f ms", t.store_ms);
    std::printf("\n");
  });
}

// ---- demo ---------------------------------------------------------------------------------------

std::vector<int32_t> RandomTokens(std::mt19937_64& rng, int n, int vocab) {
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab - 3)) + 3;
  return t;
}

void RegisterDemo(CLI::App& app) {
  struct Opts {
    std::string dir, preset = "tiny", arch = "llama3";
    int passages = 6, passage_tokens = 96, final_tokens = 24, blocks_per_prompt = 4, new_tokens = 8;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "demo",
      "End-to-end demo on an embedded default: make a synthetic model, store a few passages, answer a\n"
      "prompt in block mode (cold: encode and store; warm: load from the store) and in full mode, print\n"
      "the timings side by side, and check block mode against a from-scratch masked forward.");
  sub->add_option("--dir", o->dir, "Keep the model and store here (default: a temporary directory, removed)");
  sub->add_option("--preset", o->preset, "tiny or small")->capture_default_str()->check(CLI::IsMember({"tiny", "small"}));
  sub->add_option("--arch", o->arch, "llama3, llama2, mistral or qwen2")->capture_default_str();
  sub->add_option("--passages", o->passages, "Passages stored")->capture_default_str()->check(CLI::Range(1, 10000));
  sub->add_option("--passage-tokens", o->passage_tokens, "Tokens per passage")->capture_default_str()->check(CLI::Range(1, 100000));
  sub->add_option("--blocks", o->blocks_per_prompt, "Passages in the prompt")->capture_default_str()->check(CLI::Range(1, 10000));
  sub->add_option("--final-tokens", o->final_tokens, "Tokens of the question block")->capture_default_str()->check(CLI::Range(1, 100000));
  sub->add_option("--new-tokens", o->new_tokens, "Tokens to generate")->capture_default_str()->check(CLI::Range(0, 10000));
  sub->add_flag("--json", o->json, "Print JSON");
  sub->callback([o] {
    if (o->blocks_per_prompt > o->passages) Fail("--blocks cannot exceed --passages");
    std::string dir = o->dir;
    bool remove = false;
    if (dir.empty()) {
      std::string tmpl = (std::filesystem::temp_directory_path() / "blockkv-demo-XXXXXX").string();
      if (mkdtemp(tmpl.data()) == nullptr) Fail("cannot create a temporary directory");
      dir = tmpl;
      remove = true;
    }
    struct Cleanup {
      std::string d;
      bool on;
      ~Cleanup() {
        std::error_code ec;
        if (on) std::filesystem::remove_all(d, ec);
      }
    } cleanup{dir, remove};
    const std::string model_dir = dir + "/model", store_dir = dir + "/store";
    SyntheticModelSpec spec = Check(SyntheticPreset(o->preset, o->arch));
    spec.seed = 7;
    spec.dtype = DType::kF32;
    Check(WriteSyntheticModel(spec, model_dir));
    auto runtime = Check(Runtime::Open(model_dir));
    std::error_code ec;
    std::filesystem::remove_all(store_dir, ec);
    auto store = OpenForWrite(store_dir, /*create=*/true);

    // Passages: deterministic token ids; the prompt uses the first `blocks` of them.
    std::mt19937_64 rng(42);
    std::vector<PromptBlock> passages(o->passages);
    for (int i = 0; i < o->passages; ++i) {
      passages[i].tokens = RandomTokens(rng, o->passage_tokens, spec.vocab_size);
      passages[i].name = "passage-" + std::to_string(i);
    }
    EngineRequest req;
    req.blocks.assign(passages.begin(), passages.begin() + o->blocks_per_prompt);
    req.final_tokens = RandomTokens(rng, o->final_tokens, spec.vocab_size);
    req.prefill.all_logits = true;
    req.decode.max_new_tokens = o->new_tokens;

    Engine engine(runtime.get(), store.get());
    EngineResult cold = Check(engine.Run(req));  // every block a miss: encoded, then stored
    // Store the rest of the corpus, as an offline precompute would.
    for (int i = o->blocks_per_prompt; i < o->passages; ++i)
      Check(engine.Precompute(passages[i].tokens, passages[i].name).status());
    EngineResult warm = Check(engine.Run(req));  // every block a hit
    req.mode = AttentionMode::kFull;
    EngineResult full = Check(engine.Run(req));

    // The from-scratch reference: the whole prompt with the block mask, positions 0..T-1.
    std::vector<int64_t> sizes;
    const std::vector<int32_t> all = FlattenPrompt(req, &sizes);
    std::vector<int64_t> pos(all.size());
    for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int64_t>(i);
    const auto r0 = std::chrono::steady_clock::now();
    std::vector<float> ref = Check(ReferenceForward(runtime->model(), all, pos, BlockAttentionMask(sizes)));
    const double ref_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - r0).count();
    const size_t vocab = runtime->vocab_size();
    const size_t nf = req.final_tokens.size();
    double max_abs = 0, scale = 0;
    for (size_t i = 0; i < nf * vocab; ++i) {
      const float a = warm.logits[i], b = ref[(all.size() - nf) * vocab + i];
      max_abs = std::max(max_abs, double(std::abs(a - b)));
      scale = std::max(scale, double(std::abs(b)));
    }
    const double rel = max_abs / std::max(scale, 1e-30);
    const bool stored_equals_fresh = cold.logits == warm.logits && cold.tokens == warm.tokens;
    // fp32 throughout; the runtime sums in a different order than the double-precision reference, so
    // agreement to 1e-5 of the logit scale is what exactness means here (tests/block_attention_test.cc).
    const bool equal_to_reference = rel <= 1e-5;
    StoreStats st = Check(store->GetStats());

    if (o->json) {
      PrintJson({{"model", {{"preset", o->preset}, {"arch", o->arch}, {"layers", spec.num_layers},
                            {"hidden", spec.hidden_size}}},
                 {"prompt_tokens", all.size()},
                 {"block_cold", TimingJson(cold.timing)},
                 {"block_warm", TimingJson(warm.timing)},
                 {"full", TimingJson(full.timing)},
                 {"reference_max_abs_diff", max_abs},
                 {"reference_max_rel_diff", rel},
                 {"block_equals_masked_reference", equal_to_reference},
                 {"stored_equals_fresh_bitwise", stored_equals_fresh},
                 {"generated_block", warm.tokens},
                 {"generated_full", full.tokens},
                 {"store", StatsToJson(st)}});
    } else {
      std::printf("blockkv demo: %s %s model (%d layers, hidden %d), %d passages of %d tokens stored,\n"
                  "prompt = %d passages + %d-token question = %zu tokens, %d new tokens\n\n",
                  o->preset.c_str(), o->arch.c_str(), spec.num_layers, spec.hidden_size, o->passages,
                  o->passage_tokens, o->blocks_per_prompt, o->final_tokens, all.size(), o->new_tokens);
      std::printf("%-22s %14s %14s %14s\n", "", "block (cold)", "block (warm)", "full");
      auto row = [&](const char* name, double a, double b, double c) {
        std::printf("%-22s %14.2f %14.2f %14.2f\n", name, a, b, c);
      };
      row("lookup ms", cold.timing.lookup_ms, warm.timing.lookup_ms, full.timing.lookup_ms);
      row("load ms", cold.timing.load_ms, warm.timing.load_ms, full.timing.load_ms);
      row("encode misses ms", cold.timing.encode_ms, warm.timing.encode_ms, full.timing.encode_ms);
      row("prefill ms", cold.timing.prefill_ms, warm.timing.prefill_ms, full.timing.prefill_ms);
      row("time to first token ms", cold.timing.ttft_ms, warm.timing.ttft_ms, full.timing.ttft_ms);
      row("decode ms", cold.timing.decode_ms, warm.timing.decode_ms, full.timing.decode_ms);
      std::printf("%-22s %14s %14s %14s\n", "hits / misses",
                  (std::to_string(cold.timing.hits) + " / " + std::to_string(cold.timing.misses)).c_str(),
                  (std::to_string(warm.timing.hits) + " / " + std::to_string(warm.timing.misses)).c_str(), "-");
      std::printf("\nblock mode vs from-scratch masked forward (%.0f ms): max |diff| %.3g, relative %.3g -> %s\n",
                  ref_ms, max_abs, rel, equal_to_reference ? "EQUAL (<= 1e-5)" : "DIFFERENT");
      std::printf("stored blocks vs freshly encoded: %s\n", stored_equals_fresh ? "bitwise equal logits" : "DIFFERENT");
      std::printf("generated (block): ");
      for (int32_t t : warm.tokens) std::printf("%d ", t);
      std::printf("\ngenerated (full):  ");
      for (int32_t t : full.tokens) std::printf("%d ", t);
      std::printf("  (full attention is a different model of the prompt: tokens may differ)\n");
      std::printf("store: %llu blocks, %s raw, %s stored\n", static_cast<unsigned long long>(st.blocks),
                  FormatBytes(st.raw_bytes).c_str(), FormatBytes(st.stored_bytes).c_str());
    }
    if (!equal_to_reference || !stored_equals_fresh) Fail("block mode does not match its references", kExitError);
  });
}

}  // namespace

void RegisterRuntimeCommands(CLI::App& app) {
  RegisterMakeModel(app);
  RegisterPrecompute(app);
  RegisterRun(app);
  RegisterDemo(app);
}

}  // namespace blockkv::cli
