// Block-Attention on the CPU runtime against the from-scratch reference (attention/reference.h),
// for every architecture: block-mode prefill over encoded blocks equals a masked forward of the
// whole prompt (DESIGN §2), encoded blocks are offset-independent, one block is ordinary causal
// attention, and decoding from the cache equals fresh forwards.
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include "tests/attention_test_util.h"

namespace blockkv::testing {
namespace {

namespace bdata = boost::unit_test::data;

// Tolerance for float32 runtime logits against the double-precision reference, relative to the
// largest |logit|. Each value the runtime computes is a float32 dot product of length K <= 688
// (intermediate size of the largest model tested), whose rounding error is about sqrt(K) · u |a||b|
// for random-signed terms, u = 2^-24 ≈ 6e-8: ≈ 1.5e-6 relative to the dot's scale. RMSNorm is
// scale-invariant (errors stay relative), softmax's condition number is bounded by the score spread
// (≈ 1–4 here) and each residual layer adds its own rounding, so over 2–4 layers and the LM head
// the expected error is a few × 1e-6; 1e-5 is that bound with ~2× margin. A real bug (a wrong
// position, mask, or scaling) moves logits by 1e-2 or more.
constexpr double kLogitTolerance = 1e-5;

const std::vector<std::string> kArchs = {"llama3", "llama2", "mistral", "qwen2"};
const std::vector<int> kHeadDims = {16, 32, 64};

SyntheticModelSpec Spec(const std::string& arch, int head_dim) {
  const uint64_t arch_index = std::find(kArchs.begin(), kArchs.end(), arch) - kArchs.begin();
  SyntheticModelSpec s = TinySpec(arch, DType::kF32, /*seed=*/7 + head_dim + 1000 * arch_index);
  s.head_dim = head_dim;  // q_dim != hidden when head_dim != 16: exercises an explicit head_dim
  return s;
}

struct Prompt {
  std::vector<std::vector<int32_t>> blocks;  // the last is the final block

  std::vector<int32_t> All() const {
    std::vector<int32_t> all;
    for (const auto& b : blocks) all.insert(all.end(), b.begin(), b.end());
    return all;
  }
  std::vector<int64_t> Sizes() const {
    std::vector<int64_t> s;
    for (const auto& b : blocks) s.push_back(static_cast<int64_t>(b.size()));
    return s;
  }
};

Prompt RandomPrompt(TestRng& rng, std::vector<size_t> sizes, int vocab) {
  Prompt p;
  for (size_t n : sizes) p.blocks.push_back(rng.Tokens(n, vocab));
  return p;
}

// Block-mode prefill of `p` from freshly encoded blocks, all final-block logits.
PrefillResult BlockPrefill(const Runtime& rt, const Prompt& p,
                           std::vector<BlockKV>* encoded = nullptr) {
  std::vector<BlockKV> blocks;
  for (size_t b = 0; b + 1 < p.blocks.size(); ++b) {
    auto kv = rt.EncodeBlock(p.blocks[b]);
    BOOST_REQUIRE_MESSAGE(kv.ok(), kv.status().ToString());
    blocks.push_back(std::move(kv).value());
  }
  std::vector<const BlockKV*> ptrs;
  for (const BlockKV& b : blocks) ptrs.push_back(&b);
  PrefillOptions options;
  options.all_logits = true;
  auto r = rt.Prefill(ptrs, p.blocks.back(), options);
  BOOST_REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  if (encoded != nullptr) *encoded = std::move(blocks);
  return std::move(r).value();
}

// Reference logits of the final block of `p` under Block-Attention's mask.
std::vector<float> ReferenceFinal(const Runtime& rt, const Prompt& p, bool causal = false) {
  const std::vector<int32_t> all = p.All();
  const int64_t T = static_cast<int64_t>(all.size());
  const std::vector<int64_t> sizes = p.Sizes();
  auto ref = ReferenceForward(rt.model(), all, Iota(T),
                              causal ? CausalMask(T) : BlockAttentionMask(sizes));
  BOOST_REQUIRE_MESSAGE(ref.ok(), ref.status().ToString());
  return Rows(*ref, rt.vocab_size(), T - sizes.back(), sizes.back());
}

BOOST_AUTO_TEST_SUITE(block_attention)

BOOST_DATA_TEST_CASE(block_prefill_equals_masked_reference,
                     bdata::make(kArchs) * bdata::make(kHeadDims), arch, head_dim) {
  auto m = MakeModel(Spec(arch, head_dim));
  const Runtime& rt = *m->runtime;
  TestRng rng(100 + head_dim);
  const Prompt p = RandomPrompt(rng, {9, 14, 1, 11, 6}, rt.vocab_size());
  const PrefillResult r = BlockPrefill(rt, p);
  BOOST_REQUIRE_EQUAL(r.logits.size(), 6u * rt.vocab_size());
  BOOST_REQUIRE_EQUAL(r.cache.length, 41);
  const std::vector<float> ref = ReferenceFinal(rt, p);
  const double err = MaxRelError(r.logits, ref);
  BOOST_TEST_MESSAGE(arch << " head_dim " << head_dim << ": block vs masked reference, max rel err "
                          << err);
  BOOST_TEST(err <= kLogitTolerance);
  // The mask matters: the same prompt under a causal mask is far from block mode.
  const double causal_gap = MaxRelError(r.logits, ReferenceFinal(rt, p, /*causal=*/true));
  BOOST_TEST(causal_gap > 1e-3);
}

BOOST_DATA_TEST_CASE(moved_block_equals_computing_it_there, bdata::make(kArchs), arch) {
  auto m = MakeModel(Spec(arch, 32));
  const Runtime& rt = *m->runtime;
  TestRng rng(5);
  const std::vector<int32_t> moved = rng.Tokens(13, rt.vocab_size());
  auto kv = rt.EncodeBlock(moved);
  BOOST_REQUIRE(kv.ok());
  const std::vector<int32_t> final_block = rng.Tokens(7, rt.vocab_size());
  // The same encoded block at offsets 0, 1, 17 and 300, behind filler blocks.
  for (size_t filler : {0, 1, 17, 300}) {
    Prompt p;
    if (filler > 0) p.blocks.push_back(rng.Tokens(filler, rt.vocab_size()));
    p.blocks.push_back(moved);
    p.blocks.push_back(final_block);
    std::vector<BlockKV> blocks;
    if (filler > 0) blocks.push_back(*rt.EncodeBlock(p.blocks[0]));
    blocks.push_back(*kv);
    std::vector<const BlockKV*> ptrs;
    for (const BlockKV& b : blocks) ptrs.push_back(&b);
    auto r = rt.Prefill(ptrs, final_block, {.all_logits = true});
    BOOST_REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    const double err = MaxRelError(r->logits, ReferenceFinal(rt, p));
    BOOST_TEST_MESSAGE(arch << " block at offset " << filler << ": max rel err " << err);
    BOOST_TEST(err <= kLogitTolerance, "offset " << filler << ": " << err);
  }
  // Encoding is deterministic: the same tokens give bitwise the same block.
  auto again = rt.EncodeBlock(moved);
  BOOST_REQUIRE(again.ok());
  for (int l = 0; l < rt.num_layers(); ++l) {
    BOOST_TEST(again->k[l] == kv->k[l]);
    BOOST_TEST(again->v[l] == kv->v[l]);
  }
}

BOOST_DATA_TEST_CASE(single_block_is_causal_attention, bdata::make(kArchs), arch) {
  auto m = MakeModel(Spec(arch, 16));
  const Runtime& rt = *m->runtime;
  TestRng rng(9);
  const std::vector<int32_t> tokens = rng.Tokens(23, rt.vocab_size());
  // The masks agree ...
  const int64_t sizes[1] = {23};
  BOOST_TEST(BlockAttentionMask(sizes) == CausalMask(23));
  // ... block mode with only a final block is the full prefill, bit for bit ...
  auto block = rt.Prefill({}, tokens, {.all_logits = true});
  auto full = rt.PrefillFull(tokens, {.all_logits = true});
  BOOST_REQUIRE(block.ok() && full.ok());
  BOOST_TEST(block->logits == full->logits);
  // ... and encoding a block is a causal prefill of it: same values, and keys that RoPE at
  // positions 0..n-1 turns into the full prefill's cached keys, bit for bit.
  auto kv = rt.EncodeBlock(tokens);
  BOOST_REQUIRE(kv.ok());
  KVCache cache = rt.NewCache();
  BOOST_REQUIRE(rt.AppendBlock(cache, *kv).ok());
  for (int l = 0; l < rt.num_layers(); ++l) {
    BOOST_TEST(kv->v[l] == full->cache.v[l]);
    BOOST_TEST(cache.k[l] == full->cache.k[l]);
    BOOST_TEST(kv->k[l] != full->cache.k[l]);  // the stored keys are pre-RoPE
  }
}

BOOST_DATA_TEST_CASE(full_prefill_equals_causal_reference,
                     bdata::make(kArchs) * bdata::make(kHeadDims), arch, head_dim) {
  auto m = MakeModel(Spec(arch, head_dim));
  const Runtime& rt = *m->runtime;
  TestRng rng(31 + head_dim);
  const std::vector<int32_t> tokens = rng.Tokens(37, rt.vocab_size());
  auto full = rt.PrefillFull(tokens, {.all_logits = true});
  BOOST_REQUIRE(full.ok());
  auto ref = ReferenceForward(rt.model(), tokens, Iota(37), CausalMask(37));
  BOOST_REQUIRE(ref.ok());
  const double err = MaxRelError(full->logits, *ref);
  BOOST_TEST_MESSAGE(arch << " head_dim " << head_dim << ": full vs causal reference, max rel err "
                          << err);
  BOOST_TEST(err <= kLogitTolerance);
  // Last-position logits are the last row of all_logits.
  auto last = rt.PrefillFull(tokens);
  BOOST_REQUIRE(last.ok());
  BOOST_TEST(last->logits == Rows(full->logits, rt.vocab_size(), 36, 1));
}

BOOST_DATA_TEST_CASE(greedy_decode_equals_fresh_forwards, bdata::make(kArchs), arch) {
  auto m = MakeModel(Spec(arch, 16));
  const Runtime& rt = *m->runtime;
  TestRng rng(77);
  const Prompt p = RandomPrompt(rng, {10, 8, 5}, rt.vocab_size());
  std::vector<BlockKV> blocks;
  PrefillResult r = BlockPrefill(rt, p, &blocks);
  const std::vector<float> last = Rows(r.logits, rt.vocab_size(), 4, 1);
  DecodeOptions options;
  options.max_new_tokens = 6;
  auto gen = rt.Decode(r.cache, last, options);
  BOOST_REQUIRE_MESSAGE(gen.ok(), gen.status().ToString());
  BOOST_REQUIRE_EQUAL(gen->size(), 6u);
  BOOST_TEST(r.cache.length ==
             23 + 5);  // every generated token but the last went through the model
  std::vector<const BlockKV*> ptrs;
  for (const BlockKV& b : blocks) ptrs.push_back(&b);
  // Token s must be the argmax of a fresh block-mode prefill whose final block is followed by
  // tokens 0..s-1 (generated tokens belong to the final block's causal part).
  std::vector<int32_t> final_block = p.blocks.back();
  for (size_t s = 0; s < gen->size(); ++s) {
    auto fresh = rt.Prefill(ptrs, final_block);
    BOOST_REQUIRE(fresh.ok());
    BOOST_TEST(ArgMax(fresh->logits) == (*gen)[s], "step " << s);
    final_block.push_back((*gen)[s]);
  }
  // Greedy decode after a full prefill agrees with fresh full forwards too.
  auto full = rt.PrefillFull(p.All());
  BOOST_REQUIRE(full.ok());
  auto gen_full = rt.Decode(full->cache, full->logits, options);
  BOOST_REQUIRE(gen_full.ok());
  std::vector<int32_t> all = p.All();
  for (size_t s = 0; s < gen_full->size(); ++s) {
    auto fresh = rt.PrefillFull(all);
    BOOST_REQUIRE(fresh.ok());
    BOOST_TEST(ArgMax(fresh->logits) == (*gen_full)[s], "step " << s);
    all.push_back((*gen_full)[s]);
  }
}

BOOST_AUTO_TEST_CASE(decode_logits_match_fresh_forward) {
  auto m = MakeModel(Spec("llama3", 32));
  const Runtime& rt = *m->runtime;
  TestRng rng(3);
  std::vector<int32_t> tokens = rng.Tokens(15, rt.vocab_size());
  auto r = rt.PrefillFull(tokens);
  BOOST_REQUIRE(r.ok());
  // Extend one token at a time and compare each step's logits to a fresh full forward.
  for (int s = 0; s < 4; ++s) {
    const int32_t next = static_cast<int32_t>(rng.Next() % rt.vocab_size());
    const int32_t one[1] = {next};
    auto logits = rt.Extend(r->cache, one);
    BOOST_REQUIRE(logits.ok());
    tokens.push_back(next);
    auto fresh = rt.PrefillFull(tokens);
    BOOST_REQUIRE(fresh.ok());
    BOOST_TEST(MaxRelError(*logits, fresh->logits) <= kLogitTolerance);
  }
}

BOOST_DATA_TEST_CASE(sampling_is_seeded_and_top_k_one_is_greedy, bdata::make(kArchs), arch) {
  auto m = MakeModel(Spec(arch, 16));
  const Runtime& rt = *m->runtime;
  TestRng rng(11);
  const std::vector<int32_t> tokens = rng.Tokens(12, rt.vocab_size());
  auto run = [&](const DecodeOptions& o) {
    auto r = rt.PrefillFull(tokens);
    BOOST_REQUIRE(r.ok());
    auto g = rt.Decode(r->cache, r->logits, o);
    BOOST_REQUIRE(g.ok());
    return *g;
  };
  DecodeOptions sampled;
  sampled.max_new_tokens = 8;
  sampled.sampling = {.temperature = 1.0f, .top_k = 50, .top_p = 0.9f, .seed = 1234};
  const auto a = run(sampled), b = run(sampled);
  BOOST_TEST(a == b);
  DecodeOptions greedy;
  greedy.max_new_tokens = 8;
  DecodeOptions top1 = greedy;
  top1.sampling = {.temperature = 1.0f, .top_k = 1, .top_p = 1.0f, .seed = 99};
  BOOST_TEST(run(greedy) == run(top1));
  // A stop token ends generation and is included.
  const auto g = run(greedy);
  DecodeOptions stopping = greedy;
  stopping.stop_token_ids = {g[2]};
  const auto stopped = run(stopping);
  const size_t first = std::find(g.begin(), g.end(), g[2]) - g.begin();
  BOOST_TEST(stopped == std::vector<int32_t>(g.begin(), g.begin() + first + 1));
}

BOOST_AUTO_TEST_CASE(sliding_window_longer_than_prompt_is_refused) {
  SyntheticModelSpec spec = TinySpec("mistral");
  spec.sliding_window = 16;
  auto m = MakeModel(spec);
  const Runtime& rt = *m->runtime;
  TestRng rng(2);
  BOOST_TEST(rt.PrefillFull(rng.Tokens(16, rt.vocab_size())).ok());
  auto too_long = rt.PrefillFull(rng.Tokens(17, rt.vocab_size()));
  BOOST_TEST(too_long.status().IsNotSupported());
  auto kv = rt.EncodeBlock(rng.Tokens(10, rt.vocab_size()));
  BOOST_REQUIRE(kv.ok());
  const BlockKV* blocks[1] = {&*kv};
  const std::vector<int32_t> final7 = rng.Tokens(7, rt.vocab_size());
  BOOST_TEST(rt.Prefill(blocks, final7).status().IsNotSupported());
  // Decoding past the window is refused too.
  auto r = rt.PrefillFull(rng.Tokens(15, rt.vocab_size()));
  BOOST_REQUIRE(r.ok());
  DecodeOptions o;
  o.max_new_tokens = 5;
  BOOST_TEST(rt.Decode(r->cache, r->logits, o).status().IsNotSupported());
}

BOOST_AUTO_TEST_CASE(bad_inputs_are_refused) {
  auto m = MakeModel(TinySpec("llama3"));
  const Runtime& rt = *m->runtime;
  const std::vector<int32_t> bad = {1, 2, rt.vocab_size()};
  BOOST_TEST(rt.EncodeBlock(bad).status().IsInvalidArgument());
  BOOST_TEST(rt.EncodeBlock({}).status().IsInvalidArgument());
  const std::vector<int32_t> negative = {-1};
  BOOST_TEST(rt.PrefillFull(negative).status().IsInvalidArgument());
  BOOST_TEST(rt.PrefillFull({}).status().IsInvalidArgument());
  // A block of another shape (one layer short, or a truncated layer) is refused, naming the block.
  const std::vector<int32_t> ok = {3, 4, 5};
  auto kv = rt.EncodeBlock(ok);
  BOOST_REQUIRE(kv.ok());
  BlockKV short_block = *kv;
  short_block.k.pop_back();
  const BlockKV* blocks[2] = {&*kv, &short_block};
  auto r = rt.Prefill(blocks, ok);
  BOOST_TEST(r.status().IsInvalidArgument());
  BOOST_TEST(r.status().message().find("block 1") != std::string::npos, r.status().message());
  BlockKV truncated = *kv;
  truncated.v[0].pop_back();
  blocks[1] = &truncated;
  BOOST_TEST(rt.Prefill(blocks, ok).status().IsInvalidArgument());
  blocks[1] = nullptr;
  BOOST_TEST(rt.Prefill(blocks, ok).status().IsInvalidArgument());
  auto full = rt.PrefillFull(ok);
  BOOST_REQUIRE(full.ok());
  const std::vector<float> short_logits(rt.vocab_size() - 1, 0.0f);
  BOOST_TEST(rt.Decode(full->cache, short_logits, {}).status().IsInvalidArgument());
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace blockkv::testing
