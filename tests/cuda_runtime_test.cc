// The CUDA runtime end to end against the CPU runtime (the reference, fp32) on synthetic models of the
// four architecture presets, head_dim 64, GQA groups 2 and 4.
//
// Tolerances follow from bf16 arithmetic: every stored activation is rounded to bf16 (relative error
// <= 2^-9), about six times per layer (normed input, q/k/v, attention output, gate/up, SwiGLU, probabilities);
// over 4 layers that is ~24 independent roundings, a random walk of sqrt(24) * 2^-9 ~ 1e-2 relative to the
// values' scale, and the residual stream (fp32) does not round. We allow 3e-2 of the largest magnitude,
// and require the top-1 token of at least 90% of positions to agree (bf16 noise can flip near-ties).
// Without a CUDA device every case reports BLOCKKV_SKIPPED and returns.
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <atomic>
#include <cmath>
#include <fstream>
#include <iterator>
#include <mutex>
#include <utility>
#include <nlohmann/json.hpp>

#include "attention/cuda/cuda_backend.h"
#include "attention/cuda/cuda_runtime.h"
#include "attention/engine.h"
#include "tests/attention_test_util.h"
#include "tests/cuda_test_util.h"

namespace blockkv::testing {
namespace {

namespace bdata = boost::unit_test::data;
using cuda::CudaRuntime;
using cuda::Precision;

constexpr double kEndToEndTol = 3e-2;


// The "small" preset of `arch` reshaped to head_dim 64 (the CUDA kernels' sizes): llama3 with GQA group
// 4, the others group 2.
SyntheticModelSpec GpuSpec(const std::string& arch, uint64_t seed) {
  SyntheticModelSpec s = Get(SyntheticPreset("small", arch));
  s.head_dim = 64;
  s.num_kv_heads = 2;
  s.num_heads = arch == "llama3" ? 8 : 4;
  s.seed = seed;
  return s;
}

struct Fixture {
  TempDir dir;
  std::unique_ptr<Runtime> cpu;
  std::unique_ptr<CudaRuntime> gpu;
};

std::unique_ptr<Fixture> Load(const SyntheticModelSpec& spec, Precision p = Precision::kBF16) {
  auto f = std::make_unique<Fixture>();
  BOOST_REQUIRE(WriteSyntheticModel(spec, f->dir.str("model")).ok());
  f->cpu = Get(Runtime::Open(f->dir.str("model")));
  cuda::CudaRuntimeOptions o;
  o.precision = p;
  f->gpu = Get(CudaRuntime::Create(f->cpu->model(), o));
  return f;
}

double Top1Agreement(const std::vector<float>& a, const std::vector<float>& b, int vocab) {
  const size_t rows = a.size() / vocab;
  size_t same = 0;
  for (size_t r = 0; r < rows; ++r) {
    same += ArgMax(std::span<const float>(a.data() + r * vocab, vocab)) ==
            ArgMax(std::span<const float>(b.data() + r * vocab, vocab));
  }
  return static_cast<double>(same) / rows;
}

void CheckLogits(const std::vector<float>& got, const std::vector<float>& want, int vocab) {
  BOOST_REQUIRE_EQUAL(got.size(), want.size());
  const double rel = MaxRelError(got, want), top1 = Top1Agreement(got, want, vocab);
  BOOST_TEST_INFO("logits: max rel error " << rel << ", top-1 agreement " << top1);
  BOOST_TEST(rel <= kEndToEndTol);
  BOOST_TEST(top1 >= 0.9);
}

const std::vector<std::string> kArchs = {"llama3", "llama2", "mistral", "qwen2"};

BOOST_AUTO_TEST_SUITE(cuda_runtime)

BOOST_DATA_TEST_CASE(block_prefill_matches_cpu, bdata::make(kArchs), arch) {
  if (!HaveGpu()) return;
  auto f = Load(GpuSpec(arch, 3));
  const int vocab = f->cpu->vocab_size();
  TestRng rng(17);
  const std::vector<std::vector<int32_t>> blocks = {rng.Tokens(40, vocab), rng.Tokens(130, vocab),
                                                    rng.Tokens(75, vocab)};
  const std::vector<int32_t> final_tokens = rng.Tokens(30, vocab);

  // EncodeBlock: pre-RoPE keys and values of every layer.
  std::vector<BlockKV> cpu_blocks, gpu_blocks = Get(f->gpu->EncodeBlocks(blocks));
  for (size_t b = 0; b < blocks.size(); ++b) {
    cpu_blocks.push_back(Get(f->cpu->EncodeBlock(blocks[b])));
    BOOST_REQUIRE_EQUAL(gpu_blocks[b].tokens, cpu_blocks[b].tokens);
    for (int l = 0; l < f->cpu->num_layers(); ++l) {
      BOOST_TEST(MaxRelError(gpu_blocks[b].k[l], cpu_blocks[b].k[l]) <= kEndToEndTol);
      BOOST_TEST(MaxRelError(gpu_blocks[b].v[l], cpu_blocks[b].v[l]) <= kEndToEndTol);
    }
  }
  // A single-block encode matches the same block encoded in a batch (the batch is block-local; only the
  // GEMMs' shapes, hence their summation order, differ).
  const BlockKV single = Get(f->gpu->EncodeBlock(blocks[1]));
  for (int l = 0; l < f->cpu->num_layers(); ++l) BOOST_TEST(MaxRelError(single.k[l], gpu_blocks[1].k[l]) <= kEndToEndTol);

  // Prefill over the CPU's blocks, with every final-block position's logits.
  std::vector<const BlockKV*> cpu_ptrs;
  for (const auto& b : cpu_blocks) cpu_ptrs.push_back(&b);
  PrefillOptions all;
  all.all_logits = true;
  const PrefillResult want = Get(f->cpu->Prefill(cpu_ptrs, final_tokens, all));
  cuda::CudaPrefillResult got = Get(f->gpu->Prefill(cpu_ptrs, final_tokens, all));
  CheckLogits(got.logits, want.logits, vocab);

  // The cache: rotated keys and values of every position.
  const KVCache cache = Get(f->gpu->DownloadCache(*got.cache));
  BOOST_TEST(cache.length == want.cache.length);
  for (int l = 0; l < f->cpu->num_layers(); ++l) {
    BOOST_TEST(MaxRelError(cache.k[l], want.cache.k[l]) <= kEndToEndTol);
    BOOST_TEST(MaxRelError(cache.v[l], want.cache.v[l]) <= kEndToEndTol);
  }

  // Prefill over blocks kept on the device gives what the host round trip gives (the same bf16 values).
  auto resident = Get(f->gpu->EncodeBlocksResident(blocks));
  std::vector<const cuda::DeviceBlock*> dev_ptrs;
  for (const auto& b : resident) dev_ptrs.push_back(b.get());
  std::vector<const BlockKV*> gpu_ptrs;
  for (const auto& b : gpu_blocks) gpu_ptrs.push_back(&b);
  const auto from_device = Get(f->gpu->Prefill(dev_ptrs, final_tokens, all));
  const auto from_host = Get(f->gpu->Prefill(gpu_ptrs, final_tokens, all));
  BOOST_TEST(from_device.logits == from_host.logits);
}

BOOST_DATA_TEST_CASE(full_prefill_extend_and_decode_match_cpu, bdata::make(kArchs), arch) {
  if (!HaveGpu()) return;
  auto f = Load(GpuSpec(arch, 5));
  const int vocab = f->cpu->vocab_size();
  TestRng rng(23);
  const std::vector<int32_t> prompt = rng.Tokens(200, vocab), more = rng.Tokens(9, vocab);
  PrefillOptions all;
  all.all_logits = true;
  PrefillResult want = Get(f->cpu->PrefillFull(prompt, all));
  cuda::CudaPrefillResult got = Get(f->gpu->PrefillFull(prompt, all, 256));
  CheckLogits(got.logits, want.logits, vocab);

  const std::vector<float> want_more = Get(f->cpu->Extend(want.cache, more, all));
  const std::vector<float> got_more = Get(f->gpu->Extend(*got.cache, more, all));
  CheckLogits(got_more, want_more, vocab);

  // Greedy decode: every token the GPU picks is the CPU's argmax or within the tolerance of it, checked by
  // running the GPU's tokens through the CPU runtime.
  const std::vector<float> last(want_more.end() - vocab, want_more.end());
  DecodeOptions d;
  d.max_new_tokens = 12;
  const std::vector<int32_t> tokens = Get(f->gpu->Decode(*got.cache, last, d));
  BOOST_REQUIRE_EQUAL(tokens.size(), 12u);
  BOOST_TEST(got.cache->length() == 200 + 9 + 11);
  std::vector<float> logits = last;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const float best = logits[ArgMax(logits)];
    float scale = 0;
    for (float x : logits) scale = std::max(scale, std::fabs(x));
    BOOST_TEST_INFO("step " << i);
    BOOST_TEST(best - logits[tokens[i]] <= kEndToEndTol * scale);
    if (i + 1 < tokens.size()) logits = Get(f->cpu->Extend(want.cache, std::span<const int32_t>(&tokens[i], 1)));
  }
  // The GPU cache after decoding matches the CPU cache that ran the same tokens.
  const KVCache cache = Get(f->gpu->DownloadCache(*got.cache));
  BOOST_REQUIRE_EQUAL(cache.length, want.cache.length);
  for (int l = 0; l < f->cpu->num_layers(); ++l) BOOST_TEST(MaxRelError(cache.k[l], want.cache.k[l]) <= kEndToEndTol);
}

BOOST_AUTO_TEST_CASE(decode_graphs_replay_the_eager_step_exactly) {
  if (!HaveGpu()) return;
  auto f = Load(GpuSpec("llama3", 9));
  TestRng rng(29);
  const std::vector<int32_t> prompt = rng.Tokens(300, f->cpu->vocab_size());
  cuda::CudaRuntimeOptions eager_opts;
  eager_opts.decode_graphs = false;
  auto eager = Get(CudaRuntime::Create(f->cpu->model(), eager_opts));
  DecodeOptions d;
  d.max_new_tokens = 40;
  auto a = Get(f->gpu->PrefillFull(prompt, {}, 512));
  auto b = Get(eager->PrefillFull(prompt, {}, 512));
  BOOST_TEST(a.logits == b.logits);
  const std::vector<int32_t> greedy = Get(f->gpu->Decode(*a.cache, a.logits, d));
  BOOST_TEST(greedy == Get(eager->Decode(*b.cache, b.logits, d)));
  // Sampling on the device, captured with the step: the graph replays equal the eager steps for a seed, and
  // another rule on the same caches replaces the captured step (its parameters are baked in).
  d.sampling.temperature = 0.8f;
  d.sampling.top_k = 50;
  d.sampling.seed = 7;
  auto c1 = Get(f->gpu->PrefillFull(prompt, {}, 512));
  auto c2 = Get(eager->PrefillFull(prompt, {}, 512));
  const std::vector<int32_t> sampled = Get(f->gpu->Decode(*c1.cache, c1.logits, d));
  BOOST_TEST(sampled == Get(eager->Decode(*c2.cache, c2.logits, d)));
  BOOST_TEST(sampled != greedy);  // it samples (40 tokens from 50 candidates each)
  d.sampling.top_k = 0;
  d.sampling.top_p = 0.9f;
  d.sampling.seed = 8;
  BOOST_REQUIRE(f->gpu->Truncate(*c1.cache, 300).ok());
  BOOST_REQUIRE(eager->Truncate(*c2.cache, 300).ok());
  BOOST_TEST(Get(f->gpu->Decode(*c1.cache, c1.logits, d)) == Get(eager->Decode(*c2.cache, c2.logits, d)));
  // The first token is the host Sampler's draw from the same logits.
  DecodeOptions one = d;
  one.max_new_tokens = 1;
  Sampler host(d.sampling);
  BOOST_REQUIRE(f->gpu->Truncate(*c1.cache, 300).ok());
  BOOST_TEST(Get(f->gpu->Decode(*c1.cache, c1.logits, one)) == std::vector<int32_t>{host.Next(c1.logits)});
}

BOOST_AUTO_TEST_CASE(extend_graphs_replay_the_eager_pass_exactly) {
  if (!HaveGpu()) return;
  // A final block repeated over the same cached prefix: the first pass runs eagerly, the second captures a
  // CUDA graph and replays it, later ones replay it; every one equals an eager runtime's bit for bit, also
  // for other tokens of the same shape (the inputs are uploaded before each replay) and all-logits passes.
  auto f = Load(GpuSpec("llama3", 17));
  const int vocab = f->cpu->vocab_size();
  TestRng rng(43);
  const std::vector<int32_t> prompt = rng.Tokens(700, vocab);
  cuda::CudaRuntimeOptions eager_opts;
  eager_opts.extend_graphs = false;
  auto eager = Get(CudaRuntime::Create(f->cpu->model(), eager_opts));
  auto a = Get(f->gpu->PrefillFull(prompt, {}, 1024));
  auto b = Get(eager->PrefillFull(prompt, {}, 1024));
  BOOST_TEST(a.logits == b.logits);
  const int64_t ctx = a.cache->length();
  for (int round = 0; round < 2; ++round) {
    PrefillOptions opts;
    opts.all_logits = round == 1;
    const std::vector<int32_t> final_tokens = rng.Tokens(50, vocab);
    BOOST_REQUIRE(eager->Truncate(*b.cache, ctx).ok());
    const std::vector<float> want = Get(eager->Extend(*b.cache, final_tokens, opts));
    for (int i = 0; i < 4; ++i) {
      BOOST_TEST_INFO("round " << round << ", pass " << i);
      BOOST_REQUIRE(f->gpu->Truncate(*a.cache, ctx).ok());
      const std::vector<int32_t> tokens = i < 3 ? final_tokens : rng.Tokens(50, vocab);
      const std::vector<float> got = Get(f->gpu->Extend(*a.cache, tokens, opts));
      if (i < 3) {
        BOOST_TEST(got == want);
      } else {
        BOOST_REQUIRE(eager->Truncate(*b.cache, ctx).ok());
        BOOST_TEST(got == Get(eager->Extend(*b.cache, tokens, opts)));
      }
    }
  }
  // The cache the replays wrote equals the eager one.
  const KVCache ka = Get(f->gpu->DownloadCache(*a.cache)), kb = Get(eager->DownloadCache(*b.cache));
  BOOST_REQUIRE_EQUAL(ka.length, kb.length);
  for (int l = 0; l < f->cpu->num_layers(); ++l) BOOST_TEST((ka.k[l] == kb.k[l] && ka.v[l] == kb.v[l]));
}

BOOST_AUTO_TEST_CASE(final_block_over_split_kv_matches_cpu) {
  if (!HaveGpu()) return;
  // Enough earlier tokens that the final block's attention is split across CTAs (split-KV + merge).
  auto f = Load(GpuSpec("llama3", 11));
  const int vocab = f->cpu->vocab_size();
  TestRng rng(31);
  std::vector<std::vector<int32_t>> blocks;
  for (int i = 0; i < 20; ++i) blocks.push_back(rng.Tokens(100 + rng.Next() % 101, vocab));
  const std::vector<int32_t> final_tokens = rng.Tokens(50, vocab);
  std::vector<BlockKV> cpu_blocks;
  std::vector<const BlockKV*> ptrs;
  for (const auto& b : blocks) cpu_blocks.push_back(Get(f->cpu->EncodeBlock(b)));
  for (const auto& b : cpu_blocks) ptrs.push_back(&b);
  PrefillOptions all;
  all.all_logits = true;
  const PrefillResult want = Get(f->cpu->Prefill(ptrs, final_tokens, all));
  const auto got = Get(f->gpu->Prefill(ptrs, final_tokens, all));
  CheckLogits(got.logits, want.logits, vocab);
}

BOOST_AUTO_TEST_CASE(fp16_storage_matches_cpu) {
  if (!HaveGpu()) return;
  auto f = Load(GpuSpec("llama2", 13), Precision::kFP16);
  TestRng rng(37);
  const std::vector<int32_t> prompt = rng.Tokens(150, f->cpu->vocab_size());
  PrefillOptions all;
  all.all_logits = true;
  CheckLogits(Get(f->gpu->PrefillFull(prompt, all)).logits, Get(f->cpu->PrefillFull(prompt, all)).logits,
              f->cpu->vocab_size());
}

BOOST_AUTO_TEST_CASE(errors_are_values) {
  if (!HaveGpu()) return;
  auto f = Load(GpuSpec("qwen2", 15));
  const std::vector<int32_t> bad = {1, 2, f->cpu->vocab_size()};
  BOOST_TEST(f->gpu->PrefillFull(bad).status().IsInvalidArgument());
  BOOST_TEST(f->gpu->EncodeBlock(std::vector<int32_t>()).status().IsInvalidArgument());
  BlockKV wrong;
  wrong.tokens = 3;
  const BlockKV* ptr = &wrong;
  const std::vector<int32_t> ok = {1, 2, 3};
  BOOST_TEST(f->gpu->Prefill(std::span<const BlockKV* const>(&ptr, 1), ok).status().IsInvalidArgument());
  // head_dim 32 (the unmodified "small" preset) is refused, not miscomputed.
  TempDir dir;
  BOOST_REQUIRE(WriteSyntheticModel(Get(SyntheticPreset("small", "llama3")), dir.str("m")).ok());
  BOOST_TEST(CudaRuntime::Open(dir.str("m")).status().IsNotSupported());
}

// The Engine on the CUDA backend (what `blockkv run --device cuda` runs), through a store: a cold run
// encodes the blocks on the GPU and stores them, a warm run loads them; both give bitwise equal logits and
// tokens (the stored values are the GPU's bf16 values, exactly), and they match the CPU engine on the same
// prompt within the end-to-end tolerance. Then the CPU engine reads the GPU-stored blocks (same model
// fingerprint): its logits match its own fresh encodes within the same tolerance.
BOOST_AUTO_TEST_CASE(streamed_prefill_equals_the_loaded_prefill) {
  if (!HaveGpu()) return;
  // Blocks read layer by layer during the pass give the logits and cache of Prefill over the same host
  // blocks, bit for bit, for every ring size; a reader's error ends the pass and the runtime stays usable.
  auto f = Load(GpuSpec("qwen2", 37));
  const ModelConfig& c = f->cpu->config();
  const int vocab = c.vocab_size;
  TestRng rng(41);
  std::vector<BlockKV> blocks;
  int64_t tokens = 0;
  for (int n : {70, 1, 129, 40}) {
    blocks.push_back(Get(f->cpu->EncodeBlock(rng.Tokens(n, vocab))));
    tokens += n;
  }
  std::vector<const BlockKV*> ptrs;
  for (const auto& b : blocks) ptrs.push_back(&b);
  const std::vector<int32_t> final_tokens = rng.Tokens(30, vocab);
  PrefillOptions all;
  all.all_logits = true;
  auto want = Get(f->gpu->Prefill(ptrs, final_tokens, all, 512));
  const KVCache want_cache = Get(f->gpu->DownloadCache(*want.cache));
  std::atomic<int> calls{0};
  const CudaRuntime::LayerReader read = [&](int l, void* k, void* v) -> Status {
    size_t off = 0;
    for (const BlockKV& b : blocks) {
      const size_t n = static_cast<size_t>(b.tokens) * c.kv_dim();
      FromFloat(DType::kBF16, b.k[l].data(), static_cast<uint16_t*>(k) + off, n);
      FromFloat(DType::kBF16, b.v[l].data(), static_cast<uint16_t*>(v) + off, n);
      off += n;
    }
    ++calls;
    return Status::OK();
  };
  for (const auto& [slots, readers] : {std::pair{2, 1}, std::pair{4, 2}, std::pair{6, 5}}) {
    BOOST_TEST_INFO("slots " << slots << ", readers " << readers);
    cuda::StreamStats st;
    const cuda::StreamOptions so{slots, readers};
    auto got = Get(f->gpu->PrefillStreamed(tokens, read, final_tokens, all, 512, &so, &st));
    BOOST_TEST(got.logits == want.logits);
    const KVCache cache = Get(f->gpu->DownloadCache(*got.cache));
    BOOST_REQUIRE_EQUAL(cache.length, want_cache.length);
    for (int l = 0; l < c.num_layers; ++l) {
      BOOST_TEST(cache.k[l] == want_cache.k[l]);
      BOOST_TEST(cache.v[l] == want_cache.v[l]);
    }
    BOOST_TEST(st.bytes == static_cast<size_t>(2 * 2 * tokens * c.kv_dim() * c.num_layers));
  }
  BOOST_TEST(calls.load() == 3 * c.num_layers);

  const CudaRuntime::LayerReader failing = [&](int l, void* k, void* v) -> Status {
    if (l == 2) return Status::Corruption("bad value");
    return read(l, k, v);
  };
  auto bad = f->gpu->PrefillStreamed(tokens, failing, final_tokens, all, 512);
  BOOST_TEST(bad.status().IsCorruption());
  BOOST_TEST(bad.status().ToString().find("layer 2") != std::string::npos, bad.status().ToString());
  auto again = Get(f->gpu->PrefillStreamed(tokens, read, final_tokens, all, 512));
  BOOST_TEST(again.logits == want.logits);
  // Decoding continues from a streamed cache as from the loaded one.
  const std::vector<float> last(want.logits.end() - vocab, want.logits.end());
  DecodeOptions d;
  d.max_new_tokens = 6;
  BOOST_TEST(Get(f->gpu->Decode(*again.cache, last, d)) == Get(f->gpu->Decode(*want.cache, last, d)));
}

// A store whose block `victim` disappears (as if evicted by another process) between the Engine's lookup
// and its read of the layers.
class VanishingStore final : public BlockStore {
 public:
  VanishingStore(BlockStore* inner, BlockId victim) : inner_(inner), victim_(victim) {}
  StatusOr<BlockId> Put(const BlockToPut& b) override { return inner_->Put(b); }
  StatusOr<BlockMeta> GetMeta(const BlockId& id) override { return inner_->GetMeta(id); }
  StatusOr<bool> Contains(const BlockId& id) override { return inner_->Contains(id); }
  Status GetLayer(const BlockId& id, uint32_t l, void* k, void* v, uint64_t tb) override {
    Vanish(id);
    return inner_->GetLayer(id, l, k, v, tb);
  }
  Status GetLayers(std::span<const LayerRequest> reqs) override {
    for (const auto& r : reqs) Vanish(r.id);
    return inner_->GetLayers(reqs);
  }
  Status Delete(const BlockId& id) override { return inner_->Delete(id); }
  Status List(const ListOptions& o, const std::function<bool(const BlockMeta&)>& fn) override { return inner_->List(o, fn); }
  StatusOr<BlockId> ResolveName(const std::string& n) override { return inner_->ResolveName(n); }
  Status SetName(const BlockId& id, const std::string& n) override { return inner_->SetName(id, n); }
  Status Pin(const BlockId& id) override { return inner_->Pin(id); }
  Status Unpin(const BlockId& id) override { return inner_->Unpin(id); }
  StatusOr<StoreStats> GetStats() override { return inner_->GetStats(); }
  StatusOr<EvictResult> SetBudget(uint64_t b) override { return inner_->SetBudget(b); }
  StatusOr<EvictResult> EvictTo(uint64_t t) override { return inner_->EvictTo(t); }
  Status Compact() override { return inner_->Compact(); }
  StatusOr<VerifyReport> Verify(const std::function<void(uint64_t, uint64_t)>& p) override { return inner_->Verify(p); }
  Status Flush() override { return inner_->Flush(); }
  Status TryCatchUp() override { return inner_->TryCatchUp(); }
  const std::string& path() const override { return inner_->path(); }
  OpenMode mode() const override { return inner_->mode(); }

 private:
  void Vanish(const BlockId& id) {
    std::lock_guard<std::mutex> lock(mu_);
    if (id == victim_ && !gone_) {
      gone_ = true;
      BOOST_REQUIRE(inner_->Delete(id).ok());
    }
  }
  BlockStore* inner_;
  BlockId victim_;
  std::mutex mu_;
  bool gone_ = false;
};

BOOST_DATA_TEST_CASE(engine_on_the_cuda_backend, bdata::make(kArchs), arch) {
  if (!HaveGpu()) return;
  auto f = Load(GpuSpec(arch, 23));
  auto gpu = Get(cuda::CudaBackend::Open(f->dir.str("model")));
  BOOST_TEST((gpu->fingerprint() == f->cpu->fingerprint()));
  const int vocab = f->cpu->vocab_size();
  TestRng rng(29);
  EngineRequest req;
  for (int n : {60, 140, 33}) {
    PromptBlock b;
    b.tokens = rng.Tokens(n, vocab);
    b.name = "p" + std::to_string(req.blocks.size());
    req.blocks.push_back(b);
  }
  req.final_tokens = rng.Tokens(25, vocab);
  req.prefill.all_logits = true;
  req.decode.max_new_tokens = 6;

  auto store = Get(BlockStore::Open(f->dir.str("store"), {}));
  EngineOptions eo;
  eo.kv_dtype = DType::kBF16;  // the GPU's values are bf16: stored losslessly
  Engine engine(gpu.get(), store.get(), eo);
  const EngineResult cold = Get(engine.Run(req));
  BOOST_TEST(cold.timing.misses == 3);
  BOOST_TEST(Get(store->GetStats()).blocks == 3u);
  const EngineResult warm = Get(engine.Run(req));
  BOOST_TEST(warm.timing.hits == 3);
  BOOST_TEST(!cold.timing.streamed);
  BOOST_TEST(warm.timing.streamed);  // the hits streamed in layer by layer during the prefill
  BOOST_TEST((cold.logits == warm.logits));  // bitwise
  BOOST_TEST(cold.tokens == warm.tokens);
  BOOST_TEST(cold.tokens.size() == 6u);
  {
    // Loading every block first gives the same result; so do a mix of hits and a miss (from memory,
    // not stored here), streamed and loaded.
    EngineOptions loaded = eo;
    loaded.stream_layers = false;
    Engine first(gpu.get(), store.get(), loaded);
    const EngineResult w = Get(first.Run(req));
    BOOST_TEST(!w.timing.streamed);
    BOOST_TEST((w.logits == warm.logits));
    EngineRequest mixed = req;
    mixed.blocks.insert(mixed.blocks.begin() + 1, PromptBlock{rng.Tokens(77, vocab), ""});
    EngineOptions keep = eo;
    keep.store_misses = false;
    Engine streamed(gpu.get(), store.get(), keep);
    const EngineResult a = Get(streamed.Run(mixed));
    BOOST_TEST(a.timing.streamed);
    BOOST_TEST(a.timing.hits == 3);
    BOOST_TEST(a.timing.misses == 1);
    keep.stream_layers = false;
    Engine loading(gpu.get(), store.get(), keep);
    const EngineResult b = Get(loading.Run(mixed));
    BOOST_TEST((a.logits == b.logits));
    BOOST_TEST(a.tokens == b.tokens);
    // A block evicted between the lookup and the read: the streamed pass fails with NotFound, the engine
    // re-encodes that one, streams the others again and stores it again.
    VanishingStore vanishing(store.get(), cold.block_ids[1]);
    Engine racing(gpu.get(), &vanishing, eo);
    const EngineResult c = Get(racing.Run(req));
    BOOST_TEST(c.timing.streamed);
    BOOST_TEST((c.block_source[1] == BlockSource::kEncoded));
    BOOST_TEST(c.timing.hits == 2);
    BOOST_TEST(c.timing.misses == 1);
    BOOST_TEST(!c.block_hit[1]);
    BOOST_TEST((c.logits == warm.logits));
    BOOST_TEST(Get(store->Contains(cold.block_ids[1])));
  }
  {
    // Blocks stored as f32 stream in converted to bf16 on the host: the same as loading them.
    auto store32 = Get(BlockStore::Open(f->dir.str("store32"), {}));
    EngineOptions o32;
    o32.kv_dtype = DType::kF32;
    Engine e32(gpu.get(), store32.get(), o32);
    Get(e32.Run(req));
    const EngineResult s32 = Get(e32.Run(req));
    BOOST_TEST(s32.timing.streamed);
    o32.stream_layers = false;
    Engine l32(gpu.get(), store32.get(), o32);
    BOOST_TEST((Get(l32.Run(req)).logits == s32.logits));
  }

  Engine cpu_fresh(f->cpu.get(), nullptr);
  const EngineResult want = Get(cpu_fresh.Run(req));
  CheckLogits(warm.logits, want.logits, vocab);
  Engine cpu_stored(f->cpu.get(), store.get());
  const EngineResult from_gpu_blocks = Get(cpu_stored.Run(req));
  BOOST_TEST(from_gpu_blocks.timing.hits == 3);
  CheckLogits(from_gpu_blocks.logits, want.logits, vocab);

  // Full mode on the GPU backend.
  req.mode = AttentionMode::kFull;
  const EngineResult full = Get(engine.Run(req));
  Engine cpu_full(f->cpu.get(), nullptr);
  CheckLogits(full.logits, Get(cpu_full.Run(req)).logits, vocab);
}

// `blockkv precompute` and `blockkv run` with --device cuda, as a user runs them.
BOOST_AUTO_TEST_CASE(cli_run_on_the_gpu) {
  if (!HaveGpu()) return;
  TempDir dir;
  BOOST_REQUIRE(WriteSyntheticModel(GpuSpec("llama3", 31), dir.str("m")).ok());
  {
    std::ofstream c(dir.str("corpus.jsonl"));
    c << R"({"id": "alpha", "tokens": [5, 6, 7, 8, 9, 10, 11, 12]})" << "\n";
    c << R"({"id": "beta", "tokens": [20, 21, 22, 23]})" << "\n";
    std::ofstream(dir.str("prompt.json")) << R"({"blocks": [[5, 6, 7, 8, 9, 10, 11, 12], [20, 21, 22, 23], [30, 31]]})";
  }
  const std::string cli = testing::CliPath();
  std::string o;
  BOOST_REQUIRE_MESSAGE(RunCommand(cli + " precompute --device cuda --json --model " + dir.str("m") + " --store " +
                                       dir.str("s") + " --corpus " + dir.str("corpus.jsonl"), &o) == 0, o);
  BOOST_TEST(nlohmann::json::parse(o)["encoded"].get<int>() == 2);
  BOOST_REQUIRE_MESSAGE(RunCommand(cli + " run --device cuda --json --max-new-tokens 4 --model " + dir.str("m") +
                                       " --store " + dir.str("s") + " --prompt " + dir.str("prompt.json"), &o) == 0, o);
  const auto j = nlohmann::json::parse(o);
  BOOST_TEST(j["timing"]["hits"].get<int>() == 2);
  BOOST_TEST(j["timing"]["streamed"].get<bool>());
  BOOST_TEST(j["device"].get<std::string>().rfind("cuda", 0) == 0u);
  BOOST_TEST(j["tokens"].size() <= 4u);
  // --no-stream loads the blocks first: the same logits, byte for byte; sampling flags run on the device.
  const std::string base = cli + " run --device cuda --json --max-new-tokens 0 --all-logits --model " + dir.str("m") +
                           " --store " + dir.str("s") + " --prompt " + dir.str("prompt.json");
  BOOST_REQUIRE_MESSAGE(RunCommand(base + " --logits-out " + dir.str("a.npy"), &o) == 0, o);
  BOOST_REQUIRE_MESSAGE(RunCommand(base + " --no-stream --logits-out " + dir.str("b.npy"), &o) == 0, o);
  BOOST_TEST(!nlohmann::json::parse(o)["timing"]["streamed"].get<bool>());
  auto slurp = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), {});
  };
  BOOST_TEST(!slurp(dir.str("a.npy")).empty());
  BOOST_TEST((slurp(dir.str("a.npy")) == slurp(dir.str("b.npy"))));
  BOOST_REQUIRE_MESSAGE(RunCommand(cli + " run --device cuda --json --max-new-tokens 5 --temperature 0.9 --top-p 0.9 "
                                         "--seed 3 --stop 999999 --model " + dir.str("m") + " --store " + dir.str("s") +
                                         " --prompt " + dir.str("prompt.json"), &o) == 0, o);
  BOOST_TEST(nlohmann::json::parse(o)["tokens"].size() == 5u);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace blockkv::testing
