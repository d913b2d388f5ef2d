// bench: the GPU end-to-end benchmark (docs/benchmarks.md, "GPU (H200)"), and --oracle-out, which writes
// the CUDA runtime's logits on small synthetic models for tests/oracle/gpu_oracle.sh.
//
// One run, on a model of a preset's shape with random weights generated on the GPU:
//   full   ordinary causal prefill of L tokens (first-token latency: prefill + last-position logits);
//   block  a 50-token final block over passages of 100-200 tokens (L - 50 tokens in all) whose KV is
//          already on the GPU: "cached" with the passages already rotated into the prompt's cache, and
//          "re-encode" counting the RoPE re-encoding and copy of every passage into the cache as well;
//   store  the same block-mode prompt with the passages stored (bf16, the store's files in the OS page cache),
//          answered by the Engine on the CUDA backend: the hits streamed in layer by layer during the
//          prefill, and (--no-stream's path) loaded completely before it;
//   tiers  the same prompt answered by a long-lived Engine with every passage in its GPU tier (pre-RoPE,
//          re-encoded in place) and then in its host tier (pinned, copied straight to the device during the
//          prefill);
//   decode tokens/s after the full prefill, one CUDA-graph replay per token, greedy and sampled;
//   hf     HF transformers' full prefill of the same shapes (sdpa, bf16), by tests/oracle/hf_bench.py.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "attention/engine.h"
#include "attention/model_config.h"
#include "attention/synthetic_model.h"
#include "db/block_store.h"
#include "db/codec.h"
#include "tools/cli_util.h"
#include "tools/commands.h"
#include "tools/npy.h"
#if BLOCKKV_HAVE_CUDA
#include "attention/cuda/cuda_backend.h"
#include "attention/cuda/cuda_runtime.h"
#endif

namespace blockkv::cli {
namespace {

struct BenchOptions {
  std::string preset = "llama-3.1-8b";
  std::vector<int64_t> lengths = {512, 2048, 8192, 16384, 32768};
  int final_tokens = 50;
  int repeats = 5;
  int decode_tokens = 64;
  uint64_t seed = 1;
  bool fp16 = false;
  std::string hf_script;  // empty: no HF comparison
  std::string python = "python3";
  std::string json_out;
  std::string oracle_out;  // oracle mode
  bool store_bench = true;
  bool tier_bench = true;
  std::string store_dir;  // empty: a temporary directory
  int stream_readers = 2;
};

}  // namespace

#if BLOCKKV_HAVE_CUDA
namespace {

namespace fs = std::filesystem;
using cuda::CudaRuntime;

double Ms(std::chrono::steady_clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Times `fn` `repeats` times after one warm-up; returns the median in ms.
template <typename Fn>
double TimeMedian(int repeats, Fn&& fn) {
  fn();
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    t.push_back(Ms(std::chrono::steady_clock::now() - start));
  }
  return Median(t);
}

std::vector<int32_t> RandomTokens(size_t n, int vocab, uint64_t& state) {
  std::vector<int32_t> t(n);
  for (int32_t& x : t) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<int32_t>((state >> 33) % static_cast<uint64_t>(vocab));
  }
  return t;
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  if (!f) Fail("cannot write " + path);
}

std::string Fmt(double v, int digits = 2) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

// Block TTFT with every passage in one tier of a long-lived Engine: the GPU tier (pre-RoPE on the device,
// re-encoded at the prompt's offsets) and the host tier (pinned, copied straight to the device layer by layer).
// A first run fills the tier from `store`; the timed runs must be served by it entirely.
void TierTtft(const BenchOptions& o, ModelBackend* backend, BlockStore* store, const EngineRequest& req,
              nlohmann::json& row) {
  uint64_t bytes = 0;
  for (const auto& b : req.blocks)
    bytes += 2ull * b.tokens.size() * backend->config().kv_dim() * 2 * backend->config().num_layers;
  for (const BlockSource tier : {BlockSource::kGpu, BlockSource::kHost}) {
    EngineOptions eo;
    eo.kv_dtype = DType::kBF16;
    eo.tier_policy = CachePolicyKind::kLru;  // admits whatever fits: the tier holds the whole prompt
    (tier == BlockSource::kGpu ? eo.gpu_tier_bytes : eo.host_tier_bytes) = bytes + bytes / 8;
    Engine engine(backend, store, eo);
    if (tier == BlockSource::kHost && !engine.host_tier_pinned()) Fail("bench: could not pin the host tier's memory");
    const auto f0 = std::chrono::steady_clock::now();
    Check(engine.Run(req));  // reads the store, then admits every block
    const double fill_ms = Ms(std::chrono::steady_clock::now() - f0);
    EngineTiming last;
    const double ms = TimeMedian(o.repeats, [&] {
      const EngineResult r = Check(engine.Run(req));
      for (BlockSource s : r.block_source)
        if (s != tier) Fail(std::string("bench: a block did not come from the ") + BlockSourceName(tier) + " tier");
      last = r.timing;
    });
    const std::string prefix = std::string("tier_") + BlockSourceName(tier) + "_";
    row[prefix + "ttft_ms"] = ms;
    row[prefix + "fill_ms"] = fill_ms;
    row[prefix + "bytes"] = bytes;
    if (tier == BlockSource::kGpu) row["tier_gpu_reencode_ms"] = last.gpu_ms;
    if (tier == BlockSource::kHost) row["tier_host_wait_ms"] = last.stream_wait_ms;
  }
}

// Block TTFT with the passages in a store: precomputed through the Engine (bf16) with the default codec,
// then answered by it streamed and loaded first; then the same with raw (uncompressed) blocks, streamed.
// Adds store_* fields to `row`; removes the stores afterwards.
void StoreTtft(const BenchOptions& o, CudaRuntime* rt, const std::vector<std::vector<int32_t>>& passages,
               const std::vector<int32_t>& question, const fs::path& dir, nlohmann::json& row) {
  auto backend = cuda::CudaBackend::Borrow(rt, ModelFingerprint(HashBytes(o.preset.data(), o.preset.size())));
  EngineRequest req;
  for (const auto& p : passages) req.blocks.push_back({p, ""});
  req.final_tokens = question;
  req.decode.max_new_tokens = 0;
  // Times Run over `store` (median of `repeats`), checking that every passage was a hit, streamed or not.
  auto time_runs = [&](BlockStore* store, bool stream, int repeats, EngineTiming* last) {
    EngineOptions eo;
    eo.kv_dtype = DType::kBF16;
    eo.stream_layers = stream;
    Engine engine(backend.get(), store, eo);
    return TimeMedian(repeats, [&] {
      const EngineResult r = Check(engine.Run(req));
      if (r.timing.hits != static_cast<int>(passages.size()) || r.timing.streamed != stream)
        Fail("bench: a store run did not read every passage as asked");
      *last = r.timing;
    });
  };
  for (const Codec codec : {Codec::kZstdSplit, Codec::kRaw}) {
    const std::string prefix = codec == Codec::kRaw ? "store_raw_" : "store_";
    fs::remove_all(dir);
    StoreOptions so;
    so.codec = codec;
    auto store = Check(BlockStore::Open(dir.string(), so));
    {
      EngineOptions eo;
      eo.kv_dtype = DType::kBF16;
      Engine writer(backend.get(), store.get(), eo);
      const auto w0 = std::chrono::steady_clock::now();
      for (const auto& p : passages) Check(writer.Precompute(p, ""));
      row[prefix + "write_ms"] = Ms(std::chrono::steady_clock::now() - w0);
    }
    EngineTiming last;
    row[prefix + "ttft_streamed_ms"] = time_runs(store.get(), true, o.repeats, &last);
    row[prefix + "stream_read_ms"] = last.load_ms;
    row[prefix + "stream_wait_ms"] = last.stream_wait_ms;
    row[prefix + "bytes"] = last.bytes_loaded;
    if (codec == Codec::kZstdSplit) {
      row["store_ttft_loaded_ms"] = time_runs(store.get(), false, std::min(o.repeats, 2), &last);
      row["store_loaded_load_ms"] = last.load_ms;
    }
    if (codec == Codec::kRaw && o.tier_bench) TierTtft(o, backend.get(), store.get(), req, row);
  }
  fs::remove_all(dir);
}

void RunBench(const BenchOptions& o) {
  std::string why;
  if (!CudaRuntime::DeviceAvailable(&why)) Fail("no CUDA device (" + why + ")");
  const SyntheticModelSpec spec = Check(SyntheticPreset(o.preset));
  const std::string config_json = SyntheticConfigJson(spec);
  const ModelConfig config = Check(ParseModelConfig(config_json, o.preset));
  cuda::CudaRuntimeOptions ro;
  ro.precision = o.fp16 ? cuda::Precision::kFP16 : cuda::Precision::kBF16;
  ro.stream_readers = o.stream_readers;
  ro.stream_slots = std::max(ro.stream_slots, o.stream_readers + 2);
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<CudaRuntime> rt = Check(CudaRuntime::CreateRandom(config, o.seed, ro));
  const double init_ms = Ms(std::chrono::steady_clock::now() - t0);
  const int vocab = config.vocab_size;
  const int64_t max_len = *std::max_element(o.lengths.begin(), o.lengths.end());
  std::fprintf(stderr, "bench: %s (%s) on %s, random weights made on the GPU in %.0f ms\n", o.preset.c_str(),
               cuda::PrecisionName(rt->precision()), rt->device_name().c_str(), init_ms);

  nlohmann::json rows = nlohmann::json::array();
  uint64_t rng = o.seed * 7919 + 1;
  const fs::path store_root = o.store_dir.empty() ? fs::temp_directory_path() / ("blockkv-bench-store-" + std::to_string(::getpid()))
                                                  : fs::path(o.store_dir);
  if (o.store_bench) std::fprintf(stderr, "bench: stores under %s (removed after each length)\n", store_root.c_str());
  std::unique_ptr<cuda::DeviceKVCache> cache = Check(rt->NewCache(max_len + o.decode_tokens));
  for (const int64_t len : o.lengths) {
    nlohmann::json row;
    row["tokens"] = len;
    // Full prefill: the whole prompt, causal; logits of the last position.
    const std::vector<int32_t> prompt = RandomTokens(len, vocab, rng);
    std::vector<float> logits;
    row["full_prefill_ms"] = TimeMedian(o.repeats, [&] {
      Check(rt->Truncate(*cache, 0));
      logits = Check(rt->Extend(*cache, prompt));
    });
    // Decode after the prompt, one graph replay per token: greedy, then sampled (temperature 0.8, top-p
    // 0.95 over the whole vocabulary: the sampler sorts all of it every token, its slowest case).
    for (const bool sampled : {false, true}) {
      DecodeOptions d;
      d.max_new_tokens = o.decode_tokens;
      if (sampled) d.sampling.temperature = 0.8f, d.sampling.top_p = 0.95f, d.sampling.seed = 1;
      Check(rt->Truncate(*cache, len));
      Check(rt->Decode(*cache, logits, d));  // warm-up (captures the graph)
      Check(rt->Truncate(*cache, len));
      const auto start = std::chrono::steady_clock::now();
      const std::vector<int32_t> out = Check(rt->Decode(*cache, logits, d));
      const double ms = Ms(std::chrono::steady_clock::now() - start);
      // The first token comes from the prefill's logits; the other out.size() - 1 each ran the model.
      row[sampled ? "decode_sampled_tokens_per_s" : "decode_tokens_per_s"] = (out.size() - 1) / (ms / 1000.0);
    }
    // Block mode: passages of 100-200 tokens up to len - final, encoded once (batched) and kept on the GPU.
    if (len > o.final_tokens) {
      std::vector<std::vector<int32_t>> passages;
      int64_t left = len - o.final_tokens;
      while (left > 0) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int64_t n = 100 + static_cast<int64_t>((rng >> 33) % 101);
        if (left <= 200) n = left;                  // the last passage
        else if (left - n < 100) n = left - 100;    // leave at least 100 for it
        passages.push_back(RandomTokens(n, vocab, rng));
        left -= n;
      }
      const auto enc_start = std::chrono::steady_clock::now();
      auto blocks = Check(rt->EncodeBlocksResident(passages));
      row["encode_ms"] = Ms(std::chrono::steady_clock::now() - enc_start);
      row["passages"] = passages.size();
      const std::vector<int32_t> question = RandomTokens(o.final_tokens, vocab, rng);
      std::vector<const cuda::DeviceBlock*> ptrs;
      for (const auto& b : blocks) ptrs.push_back(b.get());
      auto assemble = [&] {
        Check(rt->Truncate(*cache, 0));
        Check(rt->AppendBlocks(*cache, ptrs));
      };
      // With re-encoding: RoPE of every passage's keys at its offset and copies into the cache, then the
      // final block.
      row["block_ttft_reencode_ms"] = TimeMedian(o.repeats, [&] {
        assemble();
        logits = Check(rt->Extend(*cache, question));
      });
      // The passages already in the cache at their offsets: the final block alone.
      assemble();
      const int64_t ctx = cache->length();
      row["block_ttft_ms"] = TimeMedian(o.repeats, [&] {
        Check(rt->Truncate(*cache, ctx));
        logits = Check(rt->Extend(*cache, question));
      });
      if (o.store_bench) StoreTtft(o, rt.get(), passages, question, store_root / ("len" + std::to_string(len)), row);
    }
    std::fprintf(stderr, "bench: %s\n", row.dump().c_str());
    rows.push_back(row);
  }
  cache.reset();

  nlohmann::json result;
  result["device"] = rt->device_name();
  result["model"] = o.preset;
  result["precision"] = cuda::PrecisionName(rt->precision());
  result["attention_kernels"] = CudaRuntime::AttentionKernels();
  result["final_tokens"] = o.final_tokens;
  result["repeats"] = o.repeats;
  result["rows"] = rows;

  if (!o.hf_script.empty()) {
    rt.reset();  // give the GPU's memory back before HF loads its copy
    const fs::path dir = fs::temp_directory_path() / ("blockkv-bench-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    WriteText((dir / "config.json").string(), config_json);
    std::ostringstream lengths;
    for (size_t i = 0; i < o.lengths.size(); ++i) lengths << (i ? "," : "") << o.lengths[i];
    const std::string hf_json = (dir / "hf.json").string();
    const std::string cmd = o.python + " " + o.hf_script + " --config " + dir.string() + " --lengths " + lengths.str() +
                            " --final " + std::to_string(o.final_tokens) + " --repeats " + std::to_string(o.repeats) +
                            " --json " + hf_json;
    std::fprintf(stderr, "bench: %s\n", cmd.c_str());
    const int rc = std::system(cmd.c_str());
    std::ifstream f(hf_json);
    if (rc == 0 && f) {
      nlohmann::json hf = nlohmann::json::parse(f);
      result["hf"] = hf;
      for (auto& row : result["rows"]) {
        for (const auto& h : hf["rows"]) {
          if (h["tokens"] == row["tokens"]) {
            row["hf_full_prefill_ms"] = h["full_prefill_ms"];
            if (h.contains("block_ttft_ms")) row["hf_block_ttft_ms"] = h["block_ttft_ms"];
            row["hf_over_blockkv_full"] = h["full_prefill_ms"].get<double>() / row["full_prefill_ms"].get<double>();
          }
        }
      }
    } else {
      result["hf_error"] = "hf_bench.py exited with status " + std::to_string(rc);
    }
    fs::remove_all(dir);
  }

  // The table.
  std::printf("%s, %s, batch 1, %s, attention %s; median of %d runs after a warm-up; ms unless noted\n",
              o.preset.c_str(), result["precision"].get<std::string>().c_str(), result["device"].get<std::string>().c_str(),
              result["attention_kernels"].get<std::string>().c_str(), o.repeats);
  std::printf("| tokens | full prefill | HF sdpa full | HF / blockkv | block TTFT (KV in cache) | block TTFT (+ re-encode) "
              "| HF block TTFT | block TTFT, GPU tier | block TTFT, host tier | block TTFT, store streamed | (raw codec) "
              "| block TTFT, store loaded first | batched encode of passages | decode tok/s | decode tok/s, sampled |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& r : result["rows"]) {
    auto get = [&](const char* k, int digits = 2) { return r.contains(k) ? Fmt(r[k].get<double>(), digits) : std::string("-"); };
    std::printf("| %lld | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", static_cast<long long>(r["tokens"].get<int64_t>()),
                get("full_prefill_ms").c_str(), get("hf_full_prefill_ms").c_str(), get("hf_over_blockkv_full").c_str(),
                get("block_ttft_ms").c_str(), get("block_ttft_reencode_ms").c_str(), get("hf_block_ttft_ms").c_str(),
                get("tier_gpu_ttft_ms").c_str(), get("tier_host_ttft_ms", 1).c_str(), get("store_ttft_streamed_ms", 1).c_str(), get("store_raw_ttft_streamed_ms", 1).c_str(),
                get("store_ttft_loaded_ms", 1).c_str(), get("encode_ms", 1).c_str(), get("decode_tokens_per_s", 1).c_str(),
                get("decode_sampled_tokens_per_s", 1).c_str());
  }
  if (!o.json_out.empty()) WriteText(o.json_out, result.dump(2) + "\n");
}

// Small models of every architecture preset (head_dim 64), a block prompt, and the CUDA runtime's logits of
// every final-block position in block and full mode, for tests/oracle/gpu_oracle.sh.
void RunOracle(const BenchOptions& o) {
  const fs::path root(o.oracle_out);
  fs::create_directories(root);
  uint64_t rng = 12345;
  std::vector<std::vector<int32_t>> blocks;
  for (int n : {40, 73, 55, 120}) blocks.push_back(RandomTokens(n, 2048, rng));
  const std::vector<int32_t> final_tokens = RandomTokens(200, 2048, rng);
  nlohmann::json prompt;
  prompt["blocks"] = blocks;
  prompt["blocks"].push_back(final_tokens);
  WriteText((root / "prompt.json").string(), prompt.dump() + "\n");
  for (const std::string arch : {"llama3", "llama2", "mistral", "qwen2"}) {
    SyntheticModelSpec spec = Check(SyntheticPreset("small", arch));
    spec.head_dim = 64;
    spec.num_kv_heads = 2;
    spec.num_heads = arch == "llama3" ? 8 : 4;
    spec.seed = 42;
    spec.dtype = DType::kBF16;
    const fs::path dir = root / arch;
    Check(WriteSyntheticModel(spec, (dir / "model").string()));
    cuda::CudaRuntimeOptions ro;
    ro.precision = o.fp16 ? cuda::Precision::kFP16 : cuda::Precision::kBF16;
    std::unique_ptr<CudaRuntime> rt = Check(CudaRuntime::Open((dir / "model").string(), ro));
    PrefillOptions all;
    all.all_logits = true;
    auto encoded = Check(rt->EncodeBlocksResident(blocks));
    std::vector<const cuda::DeviceBlock*> ptrs;
    for (const auto& b : encoded) ptrs.push_back(b.get());
    const auto block = Check(rt->Prefill(ptrs, final_tokens, all));
    std::vector<int32_t> whole;
    for (const auto& b : blocks) whole.insert(whole.end(), b.begin(), b.end());
    whole.insert(whole.end(), final_tokens.begin(), final_tokens.end());
    const auto full = Check(rt->PrefillFull(whole, all));
    const int64_t vocab = rt->vocab_size();
    Check(WriteNpy((dir / "block.npy").string(), block.logits, {static_cast<int64_t>(final_tokens.size()), vocab}));
    // Full mode: the last final_tokens positions, the same rows as block mode.
    const std::vector<float> tail(full.logits.end() - final_tokens.size() * vocab, full.logits.end());
    Check(WriteNpy((dir / "full.npy").string(), tail, {static_cast<int64_t>(final_tokens.size()), vocab}));
    std::fprintf(stderr, "oracle: %s: wrote %s\n", arch.c_str(), dir.c_str());
  }
}

}  // namespace
#endif  // BLOCKKV_HAVE_CUDA

void RegisterBenchCommand(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* sub = app.add_subcommand(
      "bench",
      "GPU benchmark: full prefill, block-mode first-token latency over GPU-resident passages, decode tokens/s, "
      "and HF transformers' full prefill of the same shapes (docs/benchmarks.md)");
  sub->add_option("--preset", o->preset, "Model shape: " + [] {
    std::string s;
    for (const auto& p : SyntheticPresetNames()) s += (s.empty() ? "" : ", ") + p;
    return s;
  }())->capture_default_str();
  sub->add_option("--lengths", o->lengths, "Prompt lengths in tokens")->delimiter(',')->capture_default_str();
  sub->add_option("--final-tokens", o->final_tokens, "Tokens of the final block")->capture_default_str()->check(CLI::Range(1, 100000));
  sub->add_option("--repeats", o->repeats, "Timed runs per measurement (median)")->capture_default_str()->check(CLI::Range(1, 1000));
  sub->add_option("--decode-tokens", o->decode_tokens, "Tokens generated per decode measurement")->capture_default_str()->check(CLI::Range(2, 100000));
  sub->add_option("--seed", o->seed, "Seed of the random weights and tokens")->capture_default_str();
  sub->add_flag("--fp16", o->fp16, "fp16 storage instead of bf16");
  sub->add_option("--hf-script", o->hf_script, "Run this HF transformers script (tests/oracle/hf_bench.py) for comparison");
  sub->add_option("--python", o->python, "Python interpreter for --hf-script")->capture_default_str();
  sub->add_option("--json", o->json_out, "Also write the results as JSON here");
  sub->add_flag("--no-store-bench", [o](int64_t) { o->store_bench = false; },
                "Skip the block TTFT with the passages in a store (it writes their KV: 128 KiB per token for "
                "Llama-3.1-8B, 4 GiB at 32K)");
  sub->add_flag("--no-tier-bench", [o](int64_t) { o->tier_bench = false; },
                "Skip the block TTFT with every passage in the GPU tier and in the (pinned) host tier of a "
                "long-lived engine (part of the store benchmark; the host tier pins the prompt's KV in host memory)");
  sub->add_option("--stream-readers", o->stream_readers,
                  "Reader threads of the streamed store runs (each reads a whole layer of every passage on the "
                  "store's thread pool)")->capture_default_str()->check(CLI::Range(1, 64));
  sub->add_option("--store-dir", o->store_dir,
                  "Where the store benchmark puts its stores (default: a temporary directory; removed after)");
  sub->add_option("--oracle-out", o->oracle_out,
                  "Instead of benchmarking: write small models of the four architecture presets and the CUDA "
                  "runtime's logits into this directory (tests/oracle/gpu_oracle.sh)");
  sub->callback([o] {
#if !BLOCKKV_HAVE_CUDA
    Fail("this blockkv was built without the CUDA backend (no nvcc at build time)");
#else
    if (!o->oracle_out.empty()) return RunOracle(*o);
    if (o->lengths.empty()) Fail("--lengths is empty");
    for (int64_t l : o->lengths) {
      if (l < 1 || l > (1 << 20)) Fail("bad length " + std::to_string(l));
    }
    RunBench(*o);
#endif
  });
}

}  // namespace blockkv::cli
