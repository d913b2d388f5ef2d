// bench-cpu: time to first token of block mode (every passage stored) against full prefill, CPU backend.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "attention/engine.h"
#include "attention/synthetic_model.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace blockkv::cli {

namespace {
double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

void RegisterBenchCpuCommand(CLI::App& app) {
  struct Opts {
    std::string model, preset = "small", arch = "llama3", json_out, kv_dtype = "f32";
    std::vector<int> lengths = {512, 1024, 2048};
    int passage_tokens = 128, final_tokens = 30, repeats = 3;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "bench-cpu",
      "Time to first token on the CPU backend: block mode with every passage already stored (load from\n"
      "the store, re-encode positions, prefill the final block) against full causal prefill of the same\n"
      "prompt, at several prompt lengths. Prints a table; --json-out writes JSON.");
  sub->add_option("--model", o->model, "HF model directory (default: a synthetic --preset model in a temp dir)");
  sub->add_option("--preset", o->preset, "Synthetic preset when no --model")->capture_default_str();
  sub->add_option("--arch", o->arch, "Synthetic arch when no --model")->capture_default_str();
  sub->add_option("--lengths", o->lengths, "Prompt lengths in tokens")->capture_default_str()->delimiter(',');
  sub->add_option("--passage-tokens", o->passage_tokens, "Tokens per passage block")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  sub->add_option("--final-tokens", o->final_tokens, "Tokens of the final block")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  sub->add_option("--repeats", o->repeats, "Timed runs per cell (median reported)")->capture_default_str()->check(CLI::Range(1, 1000));
  sub->add_option("--kv-dtype", o->kv_dtype, "Stored KV dtype: f32, bf16, f16")->capture_default_str();
  sub->add_option("--json-out", o->json_out, "Write the results as JSON here");
  sub->add_flag("--json", o->json, "Print JSON instead of the table");
  sub->callback([o] {
    auto kvd = ParseDType(o->kv_dtype);
    if (!kvd) Fail("--kv-dtype must be f32, bf16 or f16");
    const WorkDir work("", "blockkv-bench-cpu");
    const std::string& tmpl = work.path();
    std::string model_dir = o->model;
    if (model_dir.empty()) {
      SyntheticModelSpec spec = Check(SyntheticPreset(o->preset, o->arch));
      spec.seed = 1;
      model_dir = tmpl + "/model";
      Check(WriteSyntheticModel(spec, model_dir));
    }
    auto runtime = Check(Runtime::Open(model_dir));
    auto store = Check(BlockStore::Open(tmpl + "/store", StoreOptions()));
    EngineOptions eo;
    eo.kv_dtype = *kvd;
    Engine engine(runtime.get(), store.get(), eo);
    const int vocab = runtime->vocab_size();
    std::mt19937_64 rng(3);
    nlohmann::json rows = nlohmann::json::array();
    if (!o->json)
      std::printf("%8s %7s %14s %14s %14s %9s %9s\n", "tokens", "blocks", "full TTFT ms", "block TTFT ms",
                  "block load ms", "speedup", "cold ms");
    for (int len : o->lengths) {
      if (len <= o->final_tokens) Fail("each length must exceed --final-tokens");
      EngineRequest req;
      int left = len - o->final_tokens;
      while (left > 0) {
        PromptBlock b;
        const int n = std::min(left, o->passage_tokens);
        for (int i = 0; i < n; ++i) b.tokens.push_back(static_cast<int32_t>(rng() % (vocab - 3)) + 3);
        req.blocks.push_back(std::move(b));
        left -= n;
      }
      for (int i = 0; i < o->final_tokens; ++i) req.final_tokens.push_back(static_cast<int32_t>(rng() % (vocab - 3)) + 3);
      req.decode.max_new_tokens = 0;
      // Cold: every block encoded (and stored, after the first token).
      EngineResult cold = Check(engine.Run(req));
      std::vector<double> full, block, load;
      for (int r = 0; r < o->repeats; ++r) {
        req.mode = AttentionMode::kBlock;
        EngineResult w = Check(engine.Run(req));
        if (w.timing.misses != 0) Fail("a stored block was not found");
        block.push_back(w.timing.ttft_ms);
        load.push_back(w.timing.load_ms);
        req.mode = AttentionMode::kFull;
        full.push_back(Check(engine.Run(req)).timing.ttft_ms);
      }
      const double f = Median(full), b = Median(block);
      rows.push_back({{"tokens", len}, {"blocks", req.blocks.size()}, {"final_tokens", o->final_tokens},
                      {"full_ttft_ms", f}, {"block_ttft_ms", b}, {"block_load_ms", Median(load)},
                      {"speedup", f / b}, {"block_cold_ttft_ms", cold.timing.ttft_ms}});
      if (!o->json)
        std::printf("%8d %7zu %14.2f %14.2f %14.2f %8.1fx %9.2f\n", len, req.blocks.size(), f, b, Median(load), f / b,
                    cold.timing.ttft_ms);
    }
    nlohmann::json j = {{"model", model_dir == tmpl + "/model" ? o->preset + "/" + o->arch : model_dir},
                        {"layers", runtime->num_layers()},
                        {"kv_dtype", DTypeName(*kvd)},
                        {"passage_tokens", o->passage_tokens},
                        {"repeats", o->repeats},
                        {"hardware_threads", std::thread::hardware_concurrency()},
                        {"rows", rows}};
    if (!o->json_out.empty()) {
      std::ofstream f(o->json_out);
      f << j.dump(2) << "\n";
      if (!f) Fail("cannot write " + o->json_out);
    }
    if (o->json) PrintJson(j);
  });
}

}  // namespace blockkv::cli
