// The GPU tier and the pinned host tier on the CUDA backend.
//
// The claim under test is exact: a prompt's logits and cache do not depend on where each block came from
// (device-resident, pinned host memory copied straight to the device, read through reader threads, or encoded
// now), bit for bit, because every source holds the same bf16 values and every key is rotated by the same
// kernel arithmetic at the same position. So every comparison here is equality, no tolerance.
// Without a CUDA device every case reports BLOCKKV_SKIPPED and returns.
#include <boost/test/unit_test.hpp>
#include <cuda_runtime_api.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "attention/cuda/cuda_backend.h"
#include "attention/cuda/cuda_runtime.h"
#include "attention/engine.h"
#include "tests/attention_test_util.h"
#include "tests/cuda_test_util.h"

namespace blockkv::testing {
namespace {

using cuda::CudaRuntime;


SyntheticModelSpec Spec(uint64_t seed) {
  SyntheticModelSpec s = Get(SyntheticPreset("small", "llama3"));
  s.head_dim = 64;
  s.num_kv_heads = 2;
  s.num_heads = 8;
  s.seed = seed;
  return s;
}

// Pinned host memory, freed on destruction.
struct Pinned {
  void* p = nullptr;
  explicit Pinned(size_t n) { BOOST_REQUIRE(cudaHostAlloc(&p, n, cudaHostAllocDefault) == cudaSuccess); }
  ~Pinned() { cudaFreeHost(p); }
  uint8_t* get() const { return static_cast<uint8_t*>(p); }
};

void CheckCachesEqual(const KVCache& a, const KVCache& b) {
  BOOST_REQUIRE_EQUAL(a.length, b.length);
  BOOST_REQUIRE_EQUAL(a.k.size(), b.k.size());
  for (size_t l = 0; l < a.k.size(); ++l) {
    BOOST_TEST((a.k[l] == b.k[l]), "keys of layer " << l);
    BOOST_TEST((a.v[l] == b.v[l]), "values of layer " << l);
  }
}

BOOST_AUTO_TEST_SUITE(cuda_tiers)

// CudaRuntime::PrefillSegments over every mix of sources equals Prefill over the same device blocks.
BOOST_AUTO_TEST_CASE(segments_equal_device_prefill) {
  if (!HaveGpu()) return;
  TempDir dir;
  BOOST_REQUIRE(WriteSyntheticModel(Spec(41), dir.str("m")).ok());
  auto model = Get(Model::Load(dir.str("m")));
  auto rt = Get(CudaRuntime::Create(*model));
  const ModelConfig& c = rt->config();
  const int vocab = c.vocab_size;
  TestRng rng(43);
  const std::vector<std::vector<int32_t>> blocks = {rng.Tokens(17, vocab), rng.Tokens(64, vocab), rng.Tokens(33, vocab),
                                                    rng.Tokens(120, vocab), rng.Tokens(8, vocab)};
  const std::vector<int32_t> question = rng.Tokens(21, vocab);
  auto dev = Get(rt->EncodeBlocksResident(blocks));
  std::vector<const cuda::DeviceBlock*> ptrs;
  for (const auto& b : dev) ptrs.push_back(b.get());
  PrefillOptions all;
  all.all_logits = true;
  auto want = Get(rt->Prefill(std::span<const cuda::DeviceBlock* const>(ptrs), question, all));
  const KVCache want_cache = Get(rt->DownloadCache(*want.cache));

  // Every block's layers as bf16 in pinned memory, laid out as the host tier keeps them: per layer K then V.
  const size_t kvd = c.kv_dim();
  std::vector<std::unique_ptr<Pinned>> host;
  std::vector<size_t> tb;
  for (const auto& b : dev) {
    const BlockKV kv = Get(rt->DownloadBlock(*b));  // exact: bf16 -> fp32
    tb.push_back(static_cast<size_t>(kv.tokens) * kvd * 2);
    host.push_back(std::make_unique<Pinned>(2 * tb.back() * c.num_layers));
    for (int l = 0; l < c.num_layers; ++l) {
      FromFloat(DType::kBF16, kv.k[l].data(), host.back()->get() + 2 * l * tb.back(), kv.k[l].size());
      FromFloat(DType::kBF16, kv.v[l].data(), host.back()->get() + (2 * l + 1) * tb.back(), kv.v[l].size());
    }
  }
  // 0: device, 1: pinned host, 2: read by the reader.
  const std::vector<std::vector<int>> mixes = {{0, 0, 0, 0, 0}, {1, 1, 1, 1, 1}, {2, 2, 2, 2, 2}, {0, 1, 2, 0, 1},
                                               {2, 0, 2, 1, 2}, {1, 2, 1, 2, 0}, {2, 2, 1, 1, 0}};
  for (const auto& mix : mixes) {
    BOOST_TEST_CONTEXT("mix " << mix[0] << mix[1] << mix[2] << mix[3] << mix[4]) {
      std::vector<cuda::PromptSegment> segs(blocks.size());
      std::vector<size_t> read_blocks;
      for (size_t i = 0; i < blocks.size(); ++i) {
        segs[i].tokens = static_cast<int64_t>(blocks[i].size());
        if (mix[i] == 0) segs[i].device = dev[i].get();
        if (mix[i] == 1) {
          segs[i].host = host[i]->get();
          segs[i].host_layer_stride = 2 * tb[i];
          segs[i].host_value_offset = tb[i];
        }
        if (mix[i] == 2) read_blocks.push_back(i);
      }
      const CudaRuntime::LayerReader read = [&](int l, void* k, void* v) -> Status {
        size_t off = 0;
        for (size_t i : read_blocks) {
          std::memcpy(static_cast<char*>(k) + off, host[i]->get() + 2 * l * tb[i], tb[i]);
          std::memcpy(static_cast<char*>(v) + off, host[i]->get() + (2 * l + 1) * tb[i], tb[i]);
          off += tb[i];
        }
        return Status::OK();
      };
      cuda::StreamStats st;
      auto got = Get(rt->PrefillSegments(segs, read, question, all, 0, nullptr, &st));
      BOOST_TEST((got.logits == want.logits));
      CheckCachesEqual(Get(rt->DownloadCache(*got.cache)), want_cache);
      size_t host_bytes = 0;
      for (size_t i = 0; i < blocks.size(); ++i) host_bytes += mix[i] == 1 ? 2 * tb[i] * c.num_layers : 0;
      BOOST_TEST(st.host_bytes == host_bytes);
      if (mix[0] == 0 || mix[4] == 0) BOOST_TEST(st.device_ms > 0);
    }
  }
  // A reader's error ends the pass, with pinned and device blocks beside it; the runtime stays usable.
  std::vector<cuda::PromptSegment> segs = {{17, dev[0].get()}, {64}, {33, nullptr, host[2]->get(), 2 * tb[2], tb[2]}};
  const CudaRuntime::LayerReader failing = [](int l, void*, void*) -> Status {
    return l == 1 ? Status::IOError("disk on fire") : Status::OK();
  };
  auto bad = rt->PrefillSegments(segs, failing, question, all);
  BOOST_TEST(!bad.ok());
  BOOST_TEST(bad.status().ToString().find("disk on fire") != std::string::npos);
  auto again = Get(rt->Prefill(std::span<const cuda::DeviceBlock* const>(ptrs), question, all));
  BOOST_TEST((again.logits == want.logits));
}

// The Engine's four sources on the CUDA backend: encoded, store, host tier (pinned) and GPU tier, alone and
// mixed, give the same logits and tokens bit for bit; budgets hold; results and metrics name the tiers.
BOOST_AUTO_TEST_CASE(engine_tiers_bitwise_equal) {
  if (!HaveGpu()) return;
  TempDir dir;
  BOOST_REQUIRE(WriteSyntheticModel(Spec(47), dir.str("m")).ok());
  auto gpu = Get(cuda::CudaBackend::Open(dir.str("m")));
  const ModelConfig& c = gpu->config();
  const int vocab = c.vocab_size;
  TestRng rng(53);
  EngineRequest req;
  for (int n : {60, 140, 33, 90}) req.blocks.push_back({rng.Tokens(n, vocab), ""});
  req.final_tokens = rng.Tokens(25, vocab);
  req.prefill.all_logits = true;
  req.decode.max_new_tokens = 5;
  auto bytes_of = [&](size_t i) { return uint64_t{2} * req.blocks[i].tokens.size() * c.kv_dim() * 2 * c.num_layers; };

  for (const DType stored : {DType::kBF16, DType::kF32}) {
    BOOST_TEST_CONTEXT("store dtype " << DTypeName(stored)) {
      TempDir sdir;
      auto store = Get(BlockStore::Open(sdir.str("s"), {}));
      EngineOptions eo;
      eo.kv_dtype = stored;
      Engine plain(gpu.get(), store.get(), eo);
      const EngineResult encoded = Get(plain.Run(req));
      const EngineResult from_store = Get(plain.Run(req));
      for (BlockSource s : encoded.block_source) BOOST_TEST((s == BlockSource::kEncoded));
      for (BlockSource s : from_store.block_source) BOOST_TEST((s == BlockSource::kStore));
      BOOST_TEST((encoded.logits == from_store.logits));
      BOOST_TEST(encoded.tokens == from_store.tokens);

      EngineOptions tiers = eo;
      tiers.host_tier_bytes = 64 << 20;
      tiers.gpu_tier_bytes = 64 << 20;
      {
        // Host tier alone: the first run reads the store and admits, the second is served from pinned memory.
        EngineOptions host_only = eo;
        host_only.host_tier_bytes = 64 << 20;
        Engine e(gpu.get(), store.get(), host_only);
        BOOST_TEST(e.host_tier_pinned());
        Get(e.Run(req));
        const EngineResult h = Get(e.Run(req));
        for (BlockSource s : h.block_source) BOOST_TEST((s == BlockSource::kHost));
        BOOST_TEST(h.timing.host_hits == 4);
        BOOST_TEST(h.timing.host_ms == 0.0);  // no CPU copies: the device copied them itself
        BOOST_TEST((h.logits == from_store.logits));
        BOOST_TEST(h.tokens == from_store.tokens);
      }
      {
        // Both tiers: the second run is served from the GPU tier, re-encoded in place.
        Engine e(gpu.get(), store.get(), tiers);
        Get(e.Run(req));
        const EngineResult g = Get(e.Run(req));
        for (BlockSource s : g.block_source) BOOST_TEST((s == BlockSource::kGpu));
        BOOST_TEST(g.timing.gpu_hits == 4);
        BOOST_TEST(g.timing.gpu_ms > 0);
        BOOST_TEST((g.logits == from_store.logits));
        BOOST_TEST(g.tokens == from_store.tokens);
        BOOST_TEST(e.gpu_tier().size() == 4u);
        const nlohmann::json m = e.metrics().ToJson();
        BOOST_TEST(m["tiers"]["gpu"]["blocks"].get<int>() == 4);
        BOOST_TEST(m["tiers"]["gpu"]["admitted"].get<int>() == 4);
        BOOST_TEST(m["tiers"]["host"]["admitted"].get<int>() == 4);
      }
      {
        // A mix in one prompt: a GPU tier with room for blocks 0 and 2 only, a host tier for block 1, block 3
        // from the store, and a new block encoded now. LRU, so exactly what is offered in order stays.
        EngineOptions small = eo;
        small.tier_policy = CachePolicyKind::kLru;
        small.gpu_tier_bytes = bytes_of(0) + bytes_of(2);
        small.host_tier_bytes = bytes_of(1) + 4096;
        small.store_misses = false;
        Engine e(gpu.get(), store.get(), small);
        EngineRequest first;  // admits 0 and 2 to the GPU tier
        first.blocks = {req.blocks[0], req.blocks[2]};
        first.final_tokens = req.final_tokens;
        first.decode.max_new_tokens = 0;
        Get(e.Run(first));
        EngineRequest second = first;  // admits 1 to the host tier (the GPU tier refuses it: larger than its budget)
        second.blocks = {req.blocks[1]};
        Get(e.Run(second));
        EngineRequest mixed = req;
        mixed.blocks.insert(mixed.blocks.begin() + 2, PromptBlock{rng.Tokens(45, vocab), ""});
        const EngineResult m = Get(e.Run(mixed));
        const std::vector<BlockSource> want = {BlockSource::kGpu, BlockSource::kHost, BlockSource::kEncoded,
                                               BlockSource::kGpu, BlockSource::kStore};
        BOOST_TEST((m.block_source == want));
        BOOST_TEST(e.gpu_tier().used_bytes() <= small.gpu_tier_bytes);
        BOOST_TEST(e.host_tier().used_bytes() <= small.host_tier_bytes);
        // The same prompt with no tiers at all (the new block encoded, the rest from the store).
        EngineOptions no_store = eo;
        no_store.store_misses = false;
        Engine reference(gpu.get(), store.get(), no_store);
        const EngineResult ref = Get(reference.Run(mixed));
        BOOST_TEST((m.logits == ref.logits));
        BOOST_TEST(m.tokens == ref.tokens);
      }
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace blockkv::testing
