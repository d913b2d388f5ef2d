// The engine: store + runtime. Hits and misses, bitwise equality of stored and fresh blocks, the masked
// reference through the whole stack, model isolation, and damaged data never used.
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <fstream>

#include "attention/engine.h"
#include "attention/prompt_file.h"
#include "tests/attention_test_util.h"

namespace bdata = boost::unit_test::data;
using namespace blockkv;
using namespace blockkv::testing;

namespace {

EngineRequest MakeRequest(TestRng& rng, int vocab, std::vector<int> sizes, int final_tokens) {
  EngineRequest req;
  for (size_t i = 0; i < sizes.size(); ++i)
    req.blocks.push_back({rng.Tokens(sizes[i], vocab), "p" + std::to_string(i)});
  req.final_tokens = rng.Tokens(final_tokens, vocab);
  req.prefill.all_logits = true;
  req.decode.max_new_tokens = 4;
  return req;
}

std::unique_ptr<BlockStore> OpenStore(const std::string& path) {
  auto s = BlockStore::Open(path, {});
  BOOST_REQUIRE_MESSAGE(s.ok(), s.status().ToString());
  return std::move(s).value();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(engine)

const char* kArchs[] = {"llama3", "llama2", "mistral", "qwen2"};

// Through the store, in every architecture: misses then hits give bitwise equal logits, and both equal
// the from-scratch masked forward of the whole prompt.
BOOST_DATA_TEST_CASE(stored_blocks_equal_fresh_and_the_masked_reference, bdata::make(kArchs), arch) {
  auto m = MakeModel(TinySpec(arch));
  TempDir dir;
  auto store = OpenStore(dir.str("store"));
  Engine engine(m->runtime.get(), store.get());
  TestRng rng(11);
  const int vocab = m->runtime->vocab_size();
  EngineRequest req = MakeRequest(rng, vocab, {13, 29, 7}, 9);
  auto cold = engine.Run(req);
  BOOST_REQUIRE_MESSAGE(cold.ok(), cold.status().ToString());
  BOOST_TEST(cold->timing.misses == 3);
  BOOST_TEST(cold->timing.hits == 0);
  BOOST_TEST(store->GetStats()->blocks == 3u);
  auto warm = engine.Run(req);
  BOOST_REQUIRE(warm.ok());
  BOOST_TEST(warm->timing.hits == 3);
  BOOST_TEST(warm->timing.bytes_loaded > 0u);
  BOOST_TEST((cold->logits == warm->logits));  // bitwise
  BOOST_TEST(cold->tokens == warm->tokens);
  BOOST_TEST(*store->ResolveName("p1") == warm->block_ids[1]);

  std::vector<int64_t> sizes;
  const std::vector<int32_t> all = FlattenPrompt(req, &sizes);
  auto ref = ReferenceForward(m->runtime->model(), all, Iota(static_cast<int64_t>(all.size())),
                              BlockAttentionMask(sizes));
  BOOST_REQUIRE(ref.ok());
  const auto ref_final = Rows(*ref, vocab, static_cast<int64_t>(all.size() - req.final_tokens.size()),
                              static_cast<int64_t>(req.final_tokens.size()));
  // Tolerance: fp32 vs double reference, see block_attention_test.cc.
  BOOST_TEST(MaxRelError(warm->logits, ref_final) <= 1e-5);

  // Full mode returns the final block's positions too, and agrees with the causal reference.
  req.mode = AttentionMode::kFull;
  auto full = engine.Run(req);
  BOOST_REQUIRE(full.ok());
  BOOST_TEST(full->logits.size() == req.final_tokens.size() * static_cast<size_t>(vocab));
  auto causal = ReferenceForward(m->runtime->model(), all, Iota(static_cast<int64_t>(all.size())),
                                 CausalMask(static_cast<int64_t>(all.size())));
  BOOST_REQUIRE(causal.ok());
  BOOST_TEST(MaxRelError(full->logits, Rows(*causal, vocab, static_cast<int64_t>(all.size() - req.final_tokens.size()),
                                            static_cast<int64_t>(req.final_tokens.size()))) <= 1e-5);
}

// bf16 storage: loaded blocks still give bitwise the same logits as fresh ones (fresh encodes are rounded
// the same way), and the logits stay close to the fp32 ones (bf16 keeps 8 bits: relative error per
// element 2^-9; the logits move by far less than their spread).
BOOST_AUTO_TEST_CASE(bf16_storage_is_consistent) {
  auto m = MakeModel(TinySpec("llama3"));
  TempDir dir;
  auto store = OpenStore(dir.str("store"));
  EngineOptions eo;
  eo.kv_dtype = DType::kBF16;
  Engine engine(m->runtime.get(), store.get(), eo);
  Engine f32_engine(m->runtime.get(), nullptr);
  TestRng rng(5);
  EngineRequest req = MakeRequest(rng, m->runtime->vocab_size(), {20, 20}, 6);
  auto cold = engine.Run(req);
  auto warm = engine.Run(req);
  auto exact = f32_engine.Run(req);
  BOOST_REQUIRE(cold.ok() && warm.ok() && exact.ok());
  BOOST_TEST(warm->timing.hits == 2);
  BOOST_TEST((cold->logits == warm->logits));
  BOOST_TEST(store->GetMeta(warm->block_ids[0])->dtype == DType::kBF16);
  const double rel = MaxRelError(warm->logits, exact->logits);
  BOOST_TEST_MESSAGE("bf16 KV vs f32 KV, max relative logit difference " << rel);
  BOOST_TEST(rel > 0.0);  // the rounding is real
  BOOST_TEST(rel < 2e-2);
}

// Blocks of model A are never served to model B, even for identical tokens.
BOOST_AUTO_TEST_CASE(models_never_share_blocks) {
  auto a = MakeModel(TinySpec("llama3", DType::kF32, 1));
  auto b = MakeModel(TinySpec("llama3", DType::kF32, 2));  // same shapes, other weights
  BOOST_REQUIRE(a->runtime->fingerprint() != b->runtime->fingerprint());
  TempDir dir;
  auto store = OpenStore(dir.str("store"));
  Engine ea(a->runtime.get(), store.get()), eb(b->runtime.get(), store.get());
  TestRng rng(3);
  EngineRequest req = MakeRequest(rng, a->runtime->vocab_size(), {10, 12}, 4);
  BOOST_REQUIRE(ea.Run(req).ok());
  auto rb = eb.Run(req);
  BOOST_REQUIRE(rb.ok());
  BOOST_TEST(rb->timing.hits == 0);  // B misses and encodes its own blocks
  BOOST_TEST(rb->timing.misses == 2);
  BOOST_TEST(store->GetStats()->blocks == 4u);
  // B's answer equals B computing without any store.
  Engine alone(b->runtime.get(), nullptr);
  auto ref = alone.Run(req);
  BOOST_TEST((rb->logits == ref->logits));
  // And loading A's block into B's engine by id is refused.
  BlockKV kv;
  BOOST_TEST(eb.Load(ComputeBlockId(a->runtime->fingerprint(), req.blocks[0].tokens), &kv).IsInvalidArgument());
}

// A damaged stored block is reported, never used.
BOOST_AUTO_TEST_CASE(corrupt_block_is_an_error_not_an_answer) {
  auto m = MakeModel(TinySpec("llama3"));
  TempDir dir;
  TestRng rng(8);
  EngineRequest req = MakeRequest(rng, m->runtime->vocab_size(), {40}, 5);
  {
    auto store = OpenStore(dir.str("store"));
    Engine engine(m->runtime.get(), store.get());
    BOOST_REQUIRE(engine.Run(req).ok());
    BOOST_REQUIRE(store->Compact().ok());
  }
  for (auto& e : std::filesystem::directory_iterator(dir.str("store")))
    if (e.path().extension() == ".blob") FlipMiddleByte(e.path(), 0x04);
  auto store = OpenStore(dir.str("store"));
  Engine engine(m->runtime.get(), store.get());
  auto r = engine.Run(req);
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(r.status().IsCorruption(), r.status().ToString());
}

BOOST_AUTO_TEST_CASE(precompute_skips_stored_passages_and_names_them) {
  auto m = MakeModel(TinySpec("qwen2"));
  TempDir dir;
  auto store = OpenStore(dir.str("store"));
  Engine engine(m->runtime.get(), store.get());
  TestRng rng(2);
  auto t = rng.Tokens(30, m->runtime->vocab_size());
  bool present = true;
  auto id = engine.Precompute(t, "first", &present);
  BOOST_REQUIRE(id.ok());
  BOOST_TEST(!present);
  auto again = engine.Precompute(t, "renamed", &present);
  BOOST_REQUIRE(again.ok());
  BOOST_TEST(present);
  BOOST_TEST(*again == *id);
  BOOST_TEST(*store->ResolveName("renamed") == *id);
  BOOST_TEST(store->GetStats()->blocks == 1u);
}

BOOST_AUTO_TEST_CASE(prompt_and_corpus_files) {
  auto p = ParsePrompt(R"({"blocks": [[1,2,3],[4,5],[6]], "names": ["a", null]})", "p.json");
  BOOST_REQUIRE(p.ok());
  BOOST_TEST(p->blocks.size() == 2u);
  BOOST_TEST(p->blocks[0].name == "a");
  BOOST_TEST(p->blocks[1].name == "");
  BOOST_TEST((p->final_tokens == std::vector<int32_t>{6}));
  for (const char* bad : {"", "[]", R"({"blocks": []})", R"({"blocks": [[1], []]})",
                          R"({"blocks": [[1, "x"], [2]]})", R"({"blocks": [[1], [-2]]})",
                          R"({"blocks": [[1], [2]], "names": ["a", "b"]})", R"({"blocks": [[1.5]]})"}) {
    auto r = ParsePrompt(bad, "p.json");
    BOOST_TEST(r.status().IsInvalidArgument(), bad);
    BOOST_TEST(r.status().message().find("p.json") == 0u, r.status().message());
  }
  auto c = ParseCorpus("{\"id\": \"x\", \"tokens\": [1,2]}\n\n{\"id\": 7, \"tokens\": [3]}\n", "c.jsonl");
  BOOST_REQUIRE(c.ok());
  BOOST_TEST(c->size() == 2u);
  BOOST_TEST((*c)[1].name == "7");
  auto bad = ParseCorpus("{\"id\": \"x\", \"tokens\": [1,2]}\n{\"id\": \"y\"}\n", "c.jsonl");
  BOOST_TEST(bad.status().message().find("c.jsonl:2") == 0u, bad.status().message());
}

BOOST_AUTO_TEST_SUITE_END()
