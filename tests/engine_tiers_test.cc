// The engine's host tier across requests: every source of a block (host tier, store, fresh encode)
// gives bitwise the same logits; admission and eviction keep within the budget; requests from 8 threads
// at once are all answered as they would be alone, with blocks in use never evicted (run under TSan in
// CI); metrics add up.
#include <boost/test/unit_test.hpp>
#include <thread>

#include "attention/engine.h"
#include "tests/attention_test_util.h"

using namespace blockkv;
using namespace blockkv::testing;

namespace {

std::unique_ptr<BlockStore> OpenStore(const std::string& path) {
  auto s = BlockStore::Open(path, {});
  BOOST_REQUIRE_MESSAGE(s.ok(), s.status().ToString());
  return std::move(s).value();
}

EngineRequest Request(const std::vector<std::vector<int32_t>>& passages, std::vector<int> pick,
                      const std::vector<int32_t>& question) {
  EngineRequest req;
  for (int i : pick) req.blocks.push_back({passages[i], "p" + std::to_string(i)});
  req.final_tokens = question;
  req.prefill.all_logits = true;
  req.decode.max_new_tokens = 3;
  return req;
}

uint64_t BlockBytes(const Runtime& rt, size_t tokens, DType dtype) {
  return 2ull * rt.num_layers() * tokens * rt.kv_heads() * rt.head_dim() * DTypeSize(dtype);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(engine_tiers)

// The same prompt answered with its blocks encoded, then from the host tier, then (another engine, no
// tier) from the store: the logits and tokens are bitwise equal, for f32 and bf16 blocks.
BOOST_AUTO_TEST_CASE(every_source_gives_the_same_logits) {
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    TempDir dir;
    auto model = MakeModel(TinySpec("llama3"));
  const Runtime* rt = model->runtime.get();
    auto store = OpenStore(dir.str("s"));
    TestRng rng(11);
    std::vector<std::vector<int32_t>> passages;
    for (int n : {40, 70, 25}) passages.push_back(rng.Tokens(n, rt->vocab_size()));
    const EngineRequest req = Request(passages, {0, 1, 2}, rng.Tokens(9, rt->vocab_size()));
    EngineOptions with_tier;
    with_tier.kv_dtype = dtype;
    with_tier.host_tier_bytes = 64 << 20;
    Engine engine(rt, store.get(), with_tier);
    auto encoded = engine.Run(req);
    BOOST_REQUIRE(encoded.ok());
    for (BlockSource s : encoded->block_source) BOOST_TEST(BlockSourceName(s) == std::string("encoded"));
    auto from_host = engine.Run(req);
    BOOST_REQUIRE(from_host.ok());
    for (BlockSource s : from_host->block_source) BOOST_TEST(BlockSourceName(s) == std::string("host"));
    BOOST_TEST(from_host->timing.host_hits == 3);
    EngineOptions no_tier;
    no_tier.kv_dtype = dtype;
    Engine plain(rt, store.get(), no_tier);
    auto from_store = plain.Run(req);
    BOOST_REQUIRE(from_store.ok());
    for (BlockSource s : from_store->block_source) BOOST_TEST(BlockSourceName(s) == std::string("store"));
    BOOST_TEST((encoded->logits == from_host->logits));
    BOOST_TEST((encoded->logits == from_store->logits));
    BOOST_TEST((encoded->tokens == from_host->tokens));
    // A mix: one block from the host tier, one from the store, one encoded.
    Engine mixed(rt, store.get(), with_tier);
    BOOST_REQUIRE(mixed.Run(Request(passages, {0}, req.final_tokens)).ok());  // passage 0 into the tier
    const auto fresh = rng.Tokens(33, rt->vocab_size());
    passages.push_back(fresh);
    auto mix = mixed.Run(Request(passages, {0, 1, 3}, req.final_tokens));
    BOOST_REQUIRE(mix.ok());
    BOOST_TEST(BlockSourceName(mix->block_source[0]) == std::string("host"));
    BOOST_TEST(BlockSourceName(mix->block_source[1]) == std::string("store"));
    BOOST_TEST(BlockSourceName(mix->block_source[2]) == std::string("encoded"));
    Engine check(rt, nullptr, no_tier);
    auto ref = check.Run(Request(passages, {0, 1, 3}, req.final_tokens));
    BOOST_REQUIRE(ref.ok());
    BOOST_TEST((mix->logits == ref->logits));
  }
}

// A budget that holds two of the blocks: the tier never goes over it, evicts to admit, and counts it all.
BOOST_AUTO_TEST_CASE(budget_and_metrics) {
  TempDir dir;
  auto model = MakeModel(TinySpec("llama3"));
  const Runtime* rt = model->runtime.get();
  auto store = OpenStore(dir.str("s"));
  TestRng rng(12);
  std::vector<std::vector<int32_t>> passages;
  for (int i = 0; i < 6; ++i) passages.push_back(rng.Tokens(50, rt->vocab_size()));
  const uint64_t block = BlockBytes(*rt, 50, DType::kF32);
  EngineOptions o;
  o.host_tier_bytes = 2 * block + block / 2;
  o.tier_policy = CachePolicyKind::kLru;  // exact recency: the counts below follow from it
  Engine engine(rt, store.get(), o);
  const auto q = rng.Tokens(5, rt->vocab_size());
  for (int round = 0; round < 3; ++round)
    for (int i = 0; i < 6; ++i) {
      auto r = engine.Run(Request(passages, {i}, q));
      BOOST_REQUIRE(r.ok());
      BOOST_TEST(engine.host_tier().used_bytes() <= o.host_tier_bytes);
    }
  const nlohmann::json m = engine.metrics().ToJson();
  BOOST_TEST(m["requests"].get<int>() == 18);
  // A cyclic scan over 6 blocks with room for 2 under LRU: never a host hit; 6 encodes then 12 store hits.
  BOOST_TEST(m["tiers"]["host"]["blocks"].get<int>() == 0);
  BOOST_TEST(m["tiers"]["encoded"]["blocks"].get<int>() == 6);
  BOOST_TEST(m["tiers"]["store"]["blocks"].get<int>() == 12);
  BOOST_TEST(m["tiers"]["host"]["admitted"].get<int>() == 18);
  BOOST_TEST(m["tiers"]["host"]["evictions"].get<int>() == 16);
  BOOST_TEST(m["tiers"]["host"]["resident_bytes"].get<uint64_t>() == 2 * block);
  BOOST_TEST(m["ttft_ms"]["count"].get<int>() == 18);
  BOOST_TEST(m["ttft_ms"]["p50"].get<double>() > 0);
  const std::string prom = engine.metrics().ToPrometheus();
  BOOST_TEST(prom.find("blockkv_requests_total 18") != std::string::npos);
  BOOST_TEST(prom.find("blockkv_tier_blocks_total{tier=\"store\"} 12") != std::string::npos);
  BOOST_TEST(prom.find("blockkv_ttft_seconds_count 18") != std::string::npos);
  BOOST_TEST(prom.find("blockkv_ttft_seconds_bucket{le=\"+Inf\"} 18") != std::string::npos);

  // The same scan under W-TinyLFU keeps what it has (the newcomers are not more frequent) and hits.
  TempDir dir2;
  auto store2 = OpenStore(dir2.str("s"));
  o.tier_policy = CachePolicyKind::kTinyLfu;
  Engine lfu(rt, store2.get(), o);
  for (int round = 0; round < 3; ++round)
    for (int i = 0; i < 6; ++i) BOOST_REQUIRE(lfu.Run(Request(passages, {i}, q)).ok());
  const nlohmann::json ml = lfu.metrics().ToJson();
  BOOST_TEST_MESSAGE("cyclic scan, 6 blocks, room for 2: host hits lru 0, tinylfu "
                     << ml["tiers"]["host"]["blocks"].get<int>());
  BOOST_TEST(ml["tiers"]["host"]["blocks"].get<int>() > 0);
  BOOST_TEST(lfu.host_tier().used_bytes() <= o.host_tier_bytes);
}

// 8 threads send prompts drawn from a shared pool at once: every answer equals the same prompt's answer
// from a fresh engine, the budget holds, and blocks in use are never evicted from under a request (it
// would show as a wrong answer or a crash under the sanitizers).
BOOST_AUTO_TEST_CASE(eight_threads) {
  TempDir dir;
  auto model = MakeModel(TinySpec("llama3"));
  const Runtime* rt = model->runtime.get();
  auto store = OpenStore(dir.str("s"));
  TestRng rng(13);
  std::vector<std::vector<int32_t>> passages;
  for (int i = 0; i < 10; ++i) passages.push_back(rng.Tokens(20 + 5 * i, rt->vocab_size()));
  std::vector<EngineRequest> prompts;
  for (int p = 0; p < 12; ++p)
    prompts.push_back(Request(passages, {p % 10, (p * 3 + 1) % 10, (p * 7 + 2) % 10}, rng.Tokens(6, rt->vocab_size())));
  std::vector<EngineResult> want;
  {
    Engine alone(rt, nullptr);
    for (const auto& p : prompts) want.push_back(*alone.Run(p));
  }
  EngineOptions o;
  o.host_tier_bytes = 3 * BlockBytes(*rt, 50, DType::kF32);  // a few blocks: constant admission pressure
  Engine engine(rt, store.get(), o);
  std::atomic<int> wrong{0}, failed{0};
  std::atomic<bool> over_budget{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < 6; ++k) {
        const size_t p = (t * 5 + k * 7) % prompts.size();
        auto r = engine.Run(prompts[p]);
        if (!r.ok()) {
          ++failed;
          continue;
        }
        if (r->logits != want[p].logits || r->tokens != want[p].tokens) ++wrong;
        if (engine.host_tier().used_bytes() > o.host_tier_bytes) over_budget = true;
      }
    });
  for (auto& th : threads) th.join();
  BOOST_TEST(failed.load() == 0);
  BOOST_TEST(wrong.load() == 0);
  BOOST_TEST(!over_budget.load());
  const nlohmann::json m = engine.metrics().ToJson();
  BOOST_TEST(m["requests"].get<int>() == 48);
  BOOST_TEST(m["tiers"]["host"]["blocks"].get<int>() + m["tiers"]["store"]["blocks"].get<int>() +
                 m["tiers"]["encoded"]["blocks"].get<int>() ==
             48 * 3);
}

BOOST_AUTO_TEST_SUITE_END()
