// bench-workload: many prompts over a stored corpus with Zipf-popular passages, through one long-lived
// engine: hit rate per tier, TTFT percentiles and requests/s, for each tier policy and for full prefill.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "attention/engine.h"
#include "attention/engine/cache_trace.h"
#include "attention/synthetic_model.h"
#include "tools/cli_util.h"
#include "tools/commands.h"
#include "tools/runtime_util.h"

namespace blockkv::cli {

namespace {

struct Opts {
  std::string model, device = "cpu", preset = "tiny", json_out, policies = "tinylfu,lru";
  int corpus = 400, passage_tokens = 64, prompts = 1000, per_prompt = 20, question_tokens = 16, full_prompts = 100;
  double zipf = 1.0, tier_fraction = 0.1, gpu_fraction = -1, one_off = 0.0;
  uint64_t seed = 1;
  bool random_weights = false;
};

// Draws ranks 0..n-1 with probability proportional to (rank + 1)^-s.
class Zipf {
 public:
  Zipf(int n, double s) : cdf_(n) {
    double sum = 0;
    for (int i = 0; i < n; ++i) cdf_[i] = sum += std::pow(i + 1.0, -s);
    for (double& c : cdf_) c /= sum;
  }
  int Draw(SplitMix64& rng) const {
    return static_cast<int>(std::lower_bound(cdf_.begin(), cdf_.end(), rng.Uniform()) - cdf_.begin()) %
           static_cast<int>(cdf_.size());
  }

 private:
  std::vector<double> cdf_;
};

struct RunStats {
  std::string name;
  size_t prompts = 0;
  uint64_t blocks[kNumBlockSources] = {};
  std::vector<double> ttft;
  double seconds = 0;
  nlohmann::json metrics;
};


}  // namespace

void RegisterBenchWorkloadCommand(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "bench-workload",
      "A retrieval workload through one long-lived engine: a corpus of passages is stored, then --prompts\n"
      "prompts of --passages-per-prompt passages each (drawn Zipf-wise, --one-off of them passages seen\n"
      "once) are answered in turn, with a host tier of --tier-fraction of the corpus's bytes (and on cuda\n"
      "a GPU tier of --gpu-tier-fraction). Reports the share of blocks each source served, TTFT p50/p99\n"
      "and requests/s for each --policies entry, and for full prefill of the first --full-prompts prompts.\n"
      "docs/benchmarks.md and docs/tiers.md have the figures.");
  sub->add_option("--model", o->model, "HF model directory (default: a synthetic --preset model in a temporary directory)");
  sub->add_option("--preset", o->preset, "Synthetic model preset when --model is not given")->capture_default_str();
  AddDeviceOption(sub, &o->device);
  sub->add_option("--corpus", o->corpus, "Passages in the corpus")->capture_default_str()->check(CLI::Range(1, 10000000));
  sub->add_option("--passage-tokens", o->passage_tokens, "Tokens per passage")->capture_default_str()->check(CLI::Range(1, 100000));
  sub->add_option("--prompts", o->prompts, "Prompts answered")->capture_default_str()->check(CLI::Range(1, 10000000));
  sub->add_option("--passages-per-prompt", o->per_prompt, "Passages per prompt (distinct)")->capture_default_str()->check(CLI::Range(1, 10000));
  sub->add_option("--question-tokens", o->question_tokens, "Tokens of each final block")->capture_default_str();
  sub->add_option("--zipf", o->zipf, "Zipf exponent of passage popularity")->capture_default_str();
  sub->add_option("--one-off", o->one_off, "Share of passage slots filled by passages seen once")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  sub->add_option("--tier-fraction", o->tier_fraction, "Host tier budget as a share of the corpus's KV bytes")->capture_default_str();
  sub->add_option("--gpu-tier-fraction", o->gpu_fraction,
                  "GPU tier budget as a share of the corpus's KV bytes (cuda; default 0.1 there: a corpus 10x the tier)");
  sub->add_flag("--random-weights", o->random_weights,
                "cuda, without --model: the --preset's shape with random weights made on the GPU (no weights file; "
                "full-size shapes such as llama-3.1-8b)");
  sub->add_option("--policies", o->policies, "Tier policies to compare (tinylfu, 2q, lru), comma-separated")->capture_default_str();
  sub->add_option("--full-prompts", o->full_prompts, "Prompts answered with full prefill, for comparison (0: none)")->capture_default_str();
  sub->add_option("--seed", o->seed, "Seed of the corpus and the draws")->capture_default_str();
  sub->add_option("--json", o->json_out, "Also write the results as JSON here");
  sub->callback([o] {
    if (o->per_prompt > o->corpus) Fail("--passages-per-prompt cannot exceed --corpus");
    const WorkDir work("", "blockkv-workload");
    const std::string& tmpl = work.path();
    std::string model = o->model;
    if (o->random_weights && (o->device != "cuda" || !model.empty()))
      Fail("--random-weights needs --device cuda and no --model", 2);
    const double gpu_fraction = o->gpu_fraction >= 0 ? o->gpu_fraction : (o->device == "cuda" ? 0.1 : 0.0);
    if (gpu_fraction > 0 && o->device != "cuda") Fail("--gpu-tier-fraction needs --device cuda", 2);
    if (model.empty() && !o->random_weights) {
      model = tmpl + "/model";
      SyntheticModelSpec spec = Check(SyntheticPreset(o->preset));
      spec.dtype = o->device == "cuda" ? DType::kBF16 : DType::kF32;
      Check(WriteSyntheticModel(spec, model));
    }
    Backend backend = o->random_weights ? OpenRandomCudaBackend(o->preset, o->seed) : OpenBackend(o->device, model);
    const ModelConfig& c = backend.backend->config();
    const DType kv = ParseKvDType("", o->device);
    SplitMix64 rng(o->seed);
    const auto tokens = [&](int n) {
      std::vector<int32_t> t(n);
      for (auto& x : t) x = static_cast<int32_t>(rng.Below(static_cast<uint64_t>(c.vocab_size)));
      return t;
    };
    std::vector<std::vector<int32_t>> corpus(o->corpus);
    for (auto& p : corpus) p = tokens(o->passage_tokens);
    const uint64_t block_bytes = 2ull * c.num_layers * o->passage_tokens * c.num_kv_heads * c.head_dim * DTypeSize(kv);
    const uint64_t corpus_bytes = block_bytes * corpus.size();
    // The prompts: distinct Zipf-drawn passages, some slots given to passages seen only once.
    const Zipf zipf(o->corpus, o->zipf);
    std::vector<EngineRequest> prompts(o->prompts);
    for (auto& req : prompts) {
      std::vector<int> picked;
      for (int k = 0; k < o->per_prompt; ++k) {
        if (rng.Uniform() < o->one_off) {
          req.blocks.push_back({tokens(o->passage_tokens), ""});
          continue;
        }
        int p;
        do p = zipf.Draw(rng);
        while (std::find(picked.begin(), picked.end(), p) != picked.end());
        picked.push_back(p);
        req.blocks.push_back({corpus[p], ""});
      }
      req.final_tokens = tokens(o->question_tokens);
      req.decode.max_new_tokens = 0;
    }
    // Store the corpus (offline precompute).
    const std::string store_dir = tmpl + "/store";
    {
      auto store = OpenForWrite(store_dir, /*create=*/true, "raw");
      EngineOptions eo;
      eo.kv_dtype = kv;
      Engine engine(backend.backend.get(), store.get(), eo);
      for (const auto& p : corpus) Check(engine.Precompute(p, "").status());
    }
    auto store = OpenForWrite(store_dir, false, "raw");
    std::vector<RunStats> runs;
    std::string list = o->policies;
    for (size_t pos = 0; pos <= list.size();) {
      const size_t end = std::min(list.find(',', pos), list.size());
      const std::string name = list.substr(pos, end - pos);
      pos = end + 1;
      if (name.empty()) continue;
      auto kind = ParseCachePolicyKind(name);
      if (!kind) Fail("--policies: unknown policy '" + name + "' (tinylfu, 2q, lru)");
      EngineOptions eo;
      eo.kv_dtype = kv;
      eo.store_misses = false;  // one-off passages stay out of the store: the store is the corpus
      eo.host_tier_bytes = static_cast<uint64_t>(o->tier_fraction * static_cast<double>(corpus_bytes));
      eo.gpu_tier_bytes = static_cast<uint64_t>(gpu_fraction * static_cast<double>(corpus_bytes));
      eo.tier_policy = *kind;
      Engine engine(backend.backend.get(), store.get(), eo);
      RunStats rs;
      rs.name = std::string("block, ") + name;
      const auto t0 = std::chrono::steady_clock::now();
      for (const auto& req : prompts) {
        EngineResult r = Check(engine.Run(req));
        for (BlockSource s : r.block_source) ++rs.blocks[static_cast<int>(s)];
        rs.ttft.push_back(r.timing.ttft_ms);
      }
      rs.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      rs.prompts = prompts.size();
      rs.metrics = engine.metrics().ToJson();
      runs.push_back(std::move(rs));
    }
    if (o->full_prompts > 0) {
      Engine engine(backend.backend.get(), nullptr);
      RunStats rs;
      rs.name = "full prefill";
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < std::min<int>(o->full_prompts, o->prompts); ++i) {
        EngineRequest req = prompts[i];
        req.mode = AttentionMode::kFull;
        rs.ttft.push_back(Check(engine.Run(req)).timing.ttft_ms);
      }
      rs.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      rs.prompts = rs.ttft.size();
      runs.push_back(std::move(rs));
    }
    std::printf("workload: %d prompts x %d passages (%d tokens each, %.0f%% one-off), Zipf %.2f over %d passages "
                "(%s of KV); GPU tier %s (%.0f%%), host tier %s (%.0f%% of the corpus); %s, %s\n",
                o->prompts, o->per_prompt, o->passage_tokens, 100 * o->one_off, o->zipf, o->corpus,
                FormatBytes(corpus_bytes).c_str(), FormatBytes(static_cast<uint64_t>(gpu_fraction * corpus_bytes)).c_str(),
                100 * gpu_fraction, FormatBytes(static_cast<uint64_t>(o->tier_fraction * corpus_bytes)).c_str(),
                100 * o->tier_fraction, backend.backend->name().c_str(),
                o->model.empty() ? o->preset.c_str() : o->model.c_str());
    std::printf("%-16s %8s %8s %8s %8s %8s %10s %10s %10s\n", "run", "gpu", "host", "store", "encoded", "prompts",
                "TTFT p50", "TTFT p99", "req/s");
    nlohmann::json out = nlohmann::json::array();
    for (const RunStats& rs : runs) {
      const double total = static_cast<double>(rs.blocks[0] + rs.blocks[1] + rs.blocks[2] + rs.blocks[3]);
      const auto share = [&](int i) { return total > 0 ? rs.blocks[i] / total : 0.0; };
      const double p50 = Percentile(rs.ttft, 0.5), p99 = Percentile(rs.ttft, 0.99);
      std::printf("%-16s %7.1f%% %7.1f%% %7.1f%% %7.1f%% %8zu %8.2f ms %8.2f ms %10.1f\n", rs.name.c_str(),
                  100 * share(0), 100 * share(1), 100 * share(2), 100 * share(3), rs.prompts, p50, p99,
                  rs.prompts / rs.seconds);
      out.push_back({{"run", rs.name}, {"prompts", rs.prompts}, {"gpu_share", share(0)}, {"host_share", share(1)},
                     {"store_share", share(2)},
                     {"encoded_share", share(3)}, {"ttft_p50_ms", p50}, {"ttft_p99_ms", p99},
                     {"requests_per_s", rs.prompts / rs.seconds}, {"metrics", rs.metrics}});
    }
    if (!o->json_out.empty()) {
      std::ofstream f(o->json_out);
      f << nlohmann::json{{"corpus", o->corpus}, {"passage_tokens", o->passage_tokens}, {"prompts", o->prompts},
                          {"passages_per_prompt", o->per_prompt}, {"zipf", o->zipf}, {"one_off", o->one_off},
                          {"tier_fraction", o->tier_fraction}, {"gpu_tier_fraction", gpu_fraction},
                          {"corpus_bytes", corpus_bytes},
                          {"device", backend.backend->name()}, {"runs", out}}
                .dump(2)
        << "\n";
      if (!f) Fail(o->json_out + ": cannot write");
    }
  });
}

}  // namespace blockkv::cli
