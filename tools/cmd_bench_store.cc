// bench-store: codec and store throughput on Llama-3.1-8B-shaped KV blocks.
//
// The data is synthetic (no real KV exists until the runtime writes some): per layer, every channel gets a
// scale drawn from |N(0,1)| + 0.5, one channel in 16 is an outlier (×8), as pre-RoPE keys have a few large
// channels; each element is scale × N(0,1), rounded to the block dtype. Tokens are random ids.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "db/codec.h"
#include "db/thread_pool.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace blockkv::cli {

namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// splitmix64: fast, good enough for test data.
struct Rng {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float Uniform() { return static_cast<float>((Next() >> 40) + 1) * (1.0f / 16777217.0f); }
  // Box-Muller: two normals per call.
  void Normal2(float* a, float* b) {
    float u = Uniform(), v = Uniform();
    float r = std::sqrt(-2.0f * std::log(u));
    *a = r * std::cos(6.2831853f * v);
    *b = r * std::sin(6.2831853f * v);
  }
};

struct SynthBlock {
  std::vector<int32_t> tokens;
  std::vector<std::vector<uint8_t>> k, v;
};

void FillTensor(Rng& rng, const std::vector<float>& scale, size_t tokens, DType dt,
                std::vector<uint8_t>* out) {
  const size_t ch = scale.size();
  std::vector<float> f(tokens * ch);
  for (size_t i = 0; i + 1 < f.size(); i += 2) rng.Normal2(&f[i], &f[i + 1]);
  for (size_t t = 0; t < tokens; ++t)
    for (size_t c = 0; c < ch; ++c) f[t * ch + c] *= scale[c];
  out->resize(f.size() * DTypeSize(dt));
  FromFloat(dt, f.data(), out->data(), f.size());
}

struct Row {
  std::string what;
  int threads;
  double seconds;
  uint64_t raw_bytes;
  uint64_t blocks;
  double ratio;  // 0 where not applicable
};

}  // namespace

void RegisterBenchStoreCommand(CLI::App& app) {
  struct Opts {
    std::string store, json_out, dtype = "bf16";
    int blocks = 16, min_tokens = 100, max_tokens = 500, layers = 32, kv_heads = 8, head_dim = 128;
    int threads = 0, zstd_level = 1;
    uint64_t seed = 1;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "bench-store",
      "Measure codec and store throughput (GB/s, blocks/s) and compression on Llama-3.1-8B-shaped\n"
      "KV blocks (32 layers x 8 KV heads x 128 dims, 100-500 tokens), one thread and all threads.\n"
      "Data is synthetic (per-channel scales with outlier channels times Gaussian noise).");
  sub->add_option("--store", o->store, "Store directory to use (default: a temporary one, removed after)");
  sub->add_option("--blocks", o->blocks, "Number of blocks")->capture_default_str()->check(CLI::Range(1, 100000));
  sub->add_option("--min-tokens", o->min_tokens, "Fewest tokens per block")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  sub->add_option("--max-tokens", o->max_tokens, "Most tokens per block")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  sub->add_option("--layers", o->layers, "Layers")->capture_default_str()->check(CLI::Range(1, 1024));
  sub->add_option("--kv-heads", o->kv_heads, "KV heads")->capture_default_str()->check(CLI::Range(1, 1024));
  sub->add_option("--head-dim", o->head_dim, "Head dimension")->capture_default_str()->check(CLI::Range(1, 1024));
  sub->add_option("--dtype", o->dtype, "bf16, f16 or f32")->capture_default_str();
  sub->add_option("--threads", o->threads, "Threads for the 'all threads' rows (0 = all cores)")->capture_default_str();
  sub->add_option("--zstd-level", o->zstd_level, "zstd level of the high-byte plane")->capture_default_str();
  sub->add_option("--seed", o->seed, "Seed of the synthetic data")->capture_default_str();
  sub->add_option("--json-out", o->json_out, "Also write the results as JSON to this file");
  sub->add_flag("--json", o->json, "Print JSON instead of the table");
  sub->callback([o] {
    auto dt = ParseDType(o->dtype);
    if (!dt) Fail("--dtype must be bf16, f16 or f32");
    if (o->min_tokens > o->max_tokens) Fail("--min-tokens is larger than --max-tokens");
    const int all = o->threads > 0 ? o->threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const size_t ch = size_t(o->kv_heads) * o->head_dim;
    std::vector<int> thread_counts = {1};
    if (all > 1) thread_counts.push_back(all);

    // 1. Data.
    if (!o->json) std::fprintf(stderr, "generating %d blocks...\n", o->blocks);
    std::vector<SynthBlock> blocks(o->blocks);
    uint64_t raw_total = 0;
    {
      ThreadPool pool(all);
      pool.ParallelFor(blocks.size(), [&](size_t b) {
        Rng rng{o->seed * 1000003 + b};
        std::vector<float> kscale(ch), vscale(ch, 1.0f);
        for (size_t c = 0; c < ch; ++c) {
          float a, d;
          rng.Normal2(&a, &d);
          kscale[c] = std::abs(a) + 0.5f;
          if (rng.Next() % 16 == 0) kscale[c] *= 8;
          vscale[c] = 0.5f + 0.5f * std::abs(d);
        }
        const int span = o->max_tokens - o->min_tokens + 1;
        const size_t tokens = o->min_tokens + rng.Next() % span;
        for (size_t t = 0; t < tokens; ++t) blocks[b].tokens.push_back(static_cast<int32_t>(rng.Next() % 128256));
        blocks[b].k.resize(o->layers);
        blocks[b].v.resize(o->layers);
        for (int l = 0; l < o->layers; ++l) {
          FillTensor(rng, kscale, tokens, *dt, &blocks[b].k[l]);
          FillTensor(rng, vscale, tokens, *dt, &blocks[b].v[l]);
        }
      });
    }
    for (auto& b : blocks) raw_total += 2 * b.k.size() * b.k[0].size();

    std::vector<Row> rows;
    // 2. Codecs in memory.
    for (Codec codec : {Codec::kRaw, Codec::kZstdSplit}) {
      for (int threads : thread_counts) {
        ThreadPool pool(threads);
        std::vector<std::string> enc(blocks.size() * o->layers);
        auto t0 = Clock::now();
        pool.ParallelFor(enc.size(), [&](size_t i) {
          const auto& b = blocks[i / o->layers];
          const size_t l = i % o->layers;
          const uint32_t dims[4] = {2, static_cast<uint32_t>(b.tokens.size()), uint32_t(o->kv_heads), uint32_t(o->head_dim)};
          ConstPiece p[2] = {{b.k[l].data(), b.k[l].size()}, {b.v[l].data(), b.v[l].size()}};
          Check(EncodeTensor(p, *dt, dims, {codec, o->zstd_level}, &enc[i]));
        });
        auto t1 = Clock::now();
        uint64_t stored = 0;
        for (auto& e : enc) stored += e.size();
        const double ratio = double(raw_total) / double(stored);
        rows.push_back({std::string("encode ") + CodecName(codec), threads, Seconds(t0, t1), raw_total, blocks.size(), ratio});
        std::vector<std::vector<uint8_t>> out(threads + 1);
        t0 = Clock::now();
        pool.ParallelFor(enc.size(), [&](size_t i) {
          thread_local std::vector<uint8_t> buf;
          const auto& b = blocks[i / o->layers];
          const size_t tb = b.k[0].size();
          buf.resize(2 * tb);
          MutablePiece p[2] = {{buf.data(), tb}, {buf.data() + tb, tb}};
          Check(DecodeTensor(enc[i], p));
        });
        t1 = Clock::now();
        rows.push_back({std::string("decode ") + CodecName(codec), threads, Seconds(t0, t1), raw_total, blocks.size(), ratio});
      }
    }

    // 3. Store: write all blocks (each an atomic, synced batch), then read every layer back.
    std::string dir = o->store;
    bool remove = false;
    if (dir.empty()) {
      std::string tmpl = (std::filesystem::temp_directory_path() / "blockkv-bench-XXXXXX").string();
      if (mkdtemp(tmpl.data()) == nullptr) Fail("cannot create a temporary directory");
      dir = tmpl;
      remove = true;
    }
    for (int threads : thread_counts) {
      const std::string path = dir + "/store-" + std::to_string(threads);
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
      StoreOptions so;
      so.threads = threads;
      so.zstd_level = o->zstd_level;
      auto store = Check(BlockStore::Open(path, so));
      ModelFingerprint model(HashBytes("bench-store", 11));
      std::vector<BlockId> ids;
      auto t0 = Clock::now();
      for (auto& b : blocks) {
        BlockToPut p;
        p.model = model;
        p.tokens = b.tokens;
        p.num_layers = o->layers;
        p.kv_heads = o->kv_heads;
        p.head_dim = o->head_dim;
        p.dtype = *dt;
        for (int l = 0; l < o->layers; ++l) {
          p.k.push_back(b.k[l].data());
          p.v.push_back(b.v[l].data());
        }
        ids.push_back(Check(store->Put(p)));
      }
      auto t1 = Clock::now();
      StoreStats st = Check(store->GetStats());
      rows.push_back({"store put (synced)", threads, Seconds(t0, t1), raw_total, blocks.size(), st.ratio()});
      // Reads: the whole store, layer by layer as the runtime streams it (layer l of every block).
      std::vector<std::vector<uint8_t>> kbuf(blocks.size()), vbuf(blocks.size());
      for (size_t b = 0; b < blocks.size(); ++b) {
        kbuf[b].resize(blocks[b].k[0].size());
        vbuf[b].resize(blocks[b].k[0].size());
      }
      t0 = Clock::now();
      for (int l = 0; l < o->layers; ++l) {
        std::vector<LayerRequest> reqs;
        for (size_t b = 0; b < blocks.size(); ++b)
          reqs.push_back({ids[b], uint32_t(l), kbuf[b].data(), vbuf[b].data(), kbuf[b].size()});
        if (threads == 1) {
          for (auto& r : reqs) Check(store->GetLayer(r.id, r.layer, r.k_out, r.v_out, r.tensor_bytes));
        } else {
          Check(store->GetLayers(reqs));
        }
      }
      t1 = Clock::now();
      rows.push_back({"store get layers", threads, Seconds(t0, t1), raw_total, blocks.size(), 0});
    }
    if (remove) std::filesystem::remove_all(dir);

    nlohmann::json j = {{"blocks", o->blocks},
                        {"layers", o->layers},
                        {"kv_heads", o->kv_heads},
                        {"head_dim", o->head_dim},
                        {"dtype", DTypeName(*dt)},
                        {"tokens_range", {o->min_tokens, o->max_tokens}},
                        {"raw_bytes", raw_total},
                        {"hardware_threads", std::thread::hardware_concurrency()},
                        {"data", "synthetic: per-channel scale (|N(0,1)|+0.5, 1/16 channels x8) x N(0,1)"},
                        {"rows", nlohmann::json::array()}};
    for (const auto& r : rows)
      j["rows"].push_back({{"what", r.what},
                           {"threads", r.threads},
                           {"seconds", r.seconds},
                           {"gb_per_s", r.raw_bytes / r.seconds / 1e9},
                           {"blocks_per_s", r.blocks / r.seconds},
                           {"ratio", r.ratio}});
    if (!o->json_out.empty()) {
      std::ofstream f(o->json_out);
      f << j.dump(2) << "\n";
      if (!f) Fail("cannot write " + o->json_out);
    }
    if (o->json) {
      PrintJson(j);
      return;
    }
    std::printf("%d blocks, %d layers x %d kv heads x %d dims, %s, %d-%d tokens: %s raw\n", o->blocks, o->layers,
                o->kv_heads, o->head_dim, DTypeName(*dt), o->min_tokens, o->max_tokens, FormatBytes(raw_total).c_str());
    std::printf("%-22s %7s %9s %10s %9s %7s\n", "operation", "threads", "seconds", "GB/s (raw)", "blocks/s", "ratio");
    for (const auto& r : rows)
      std::printf("%-22s %7d %9.3f %10.3f %9.1f %7s\n", r.what.c_str(), r.threads, r.seconds,
                  r.raw_bytes / r.seconds / 1e9, r.blocks / r.seconds,
                  r.ratio > 0 ? (std::to_string(r.ratio).substr(0, 5) + "x").c_str() : "");
  });
}

}  // namespace blockkv::cli
