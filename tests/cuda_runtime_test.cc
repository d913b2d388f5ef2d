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
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attention/cuda/cuda_backend.h"
#include "attention/cuda/cuda_runtime.h"
#include "attention/engine.h"
#include "tests/attention_test_util.h"

namespace blockkv::testing {
namespace {

namespace bdata = boost::unit_test::data;
using cuda::CudaRuntime;
using cuda::Precision;

constexpr double kEndToEndTol = 3e-2;

bool HaveGpu() {
  std::string why;
  if (CudaRuntime::DeviceAvailable(&why)) return true;
  ReportSkipped("no CUDA device (" + why + ")");
  BOOST_TEST_MESSAGE("skipped: no CUDA device");
  return false;
}

template <typename T>
T Get(StatusOr<T> v) {
  BOOST_REQUIRE_MESSAGE(v.ok(), v.status().ToString());
  return std::move(v).value();
}

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
  BOOST_TEST(Get(f->gpu->Decode(*a.cache, a.logits, d)) == Get(eager->Decode(*b.cache, b.logits, d)));
  // Sampling (host sampler over device logits) is reproducible for a seed.
  d.sampling.temperature = 0.8f;
  d.sampling.top_k = 50;
  d.sampling.seed = 7;
  auto c1 = Get(f->gpu->PrefillFull(prompt, {}, 512));
  auto c2 = Get(eager->PrefillFull(prompt, {}, 512));
  BOOST_TEST(Get(f->gpu->Decode(*c1.cache, c1.logits, d)) == Get(eager->Decode(*c2.cache, c2.logits, d)));
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
  BOOST_TEST((cold.logits == warm.logits));  // bitwise
  BOOST_TEST(cold.tokens == warm.tokens);
  BOOST_TEST(cold.tokens.size() == 6u);

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
  BOOST_TEST(j["device"].get<std::string>().rfind("cuda", 0) == 0u);
  BOOST_TEST(j["tokens"].size() <= 4u);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace blockkv::testing
