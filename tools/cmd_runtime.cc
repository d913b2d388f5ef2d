// Runtime commands: make-model and demo (precompute: cmd_precompute.cc; run: cmd_run.cc).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <unistd.h>

#include "attention/engine.h"
#include "attention/prompt_file.h"
#include "attention/text_prompt.h"
#include "attention/reference.h"
#include "attention/synthetic_model.h"
#include "tools/cli_util.h"
#include "tools/commands.h"
#include "tools/npy.h"
#include "tools/runtime_util.h"


namespace blockkv::cli {

namespace {

void RegisterMakeModel(CLI::App& app) {
  struct Opts {
    std::string preset = "tiny", arch, out, dtype = "bf16";
    uint64_t seed = 0;
    bool rope_parameters = false;
    int layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "make-model",
      "Write a synthetic HF model directory (config.json + safetensors) with deterministic random weights,\n"
      "loadable by blockkv and by HF transformers' from_pretrained. tiny/small are test- and demo-sized;\n"
      "the full-size presets copy the real models' shapes (their files are large).");
  sub->add_option("--preset", o->preset, "One of: " + Join(SyntheticPresetNames(), ", "))->capture_default_str();
  sub->add_option("--arch", o->arch, "For tiny/small: " + Join(SyntheticArchNames(), ", ") + " (default llama3)");
  sub->add_option("--seed", o->seed, "Seed of the weights")->capture_default_str();
  sub->add_option("--dtype", o->dtype, "Weight dtype: bf16, f16 or f32")->capture_default_str();
  sub->add_flag("--rope-parameters", o->rope_parameters, "Write transformers-5 style rope_parameters");
  sub->add_option("--layers", o->layers, "Override the preset's number of layers")->check(CLI::Range(1, 1000));
  sub->add_option("--heads", o->heads, "Override the number of attention heads (hidden size = heads x head_dim)")
      ->check(CLI::Range(1, 1024));
  sub->add_option("--kv-heads", o->kv_heads, "Override the number of KV heads (must divide --heads)")->check(CLI::Range(1, 1024));
  sub->add_option("--head-dim", o->head_dim,
                  "Override the head dimension (the CUDA backend takes 64 and 128; tiny and small have 16 and 32)")
      ->check(CLI::Range(2, 1024));
  sub->add_option("--out", o->out, "Output directory")->required();
  sub->callback([o] {
    SyntheticModelSpec spec = Check(SyntheticPreset(o->preset, o->arch));
    spec.seed = o->seed;
    auto dt = ParseDType(o->dtype);
    if (!dt) Fail("--dtype must be bf16, f16 or f32, got '" + o->dtype + "'");
    spec.dtype = *dt;
    spec.rope_parameters_style = o->rope_parameters;
    if (o->layers) spec.num_layers = o->layers;
    if (o->heads) spec.num_heads = o->heads;
    if (o->kv_heads) spec.num_kv_heads = o->kv_heads;
    if (o->head_dim) spec.head_dim = o->head_dim;
    if (o->heads || o->head_dim) spec.hidden_size = spec.num_heads * spec.head_dim;
    if (spec.num_heads % spec.num_kv_heads != 0) Fail("--kv-heads must divide --heads");
    Check(WriteSyntheticModel(spec, o->out));
    std::printf("wrote %s model (%d layers, hidden %d, %d heads / %d kv heads, head_dim %d, vocab %d) to %s\n",
                o->preset.c_str(), spec.num_layers, spec.hidden_size, spec.num_heads, spec.num_kv_heads,
                spec.head_dim, spec.vocab_size, o->out.c_str());
  });
}

// ---- demo ---------------------------------------------------------------------------------------

void RegisterDemo(CLI::App& app) {
  struct Opts {
    std::string dir, preset = "tiny", arch = "llama3", question = "How tall is the lighthouse of Port Velland?";
    std::vector<std::string> passages = {"harbor-001", "harbor-002", "harbor-003", "harbor-011"};
    int new_tokens = 12;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "demo",
      "End-to-end demo on an embedded default, in text: make a synthetic model (with its tokenizer), ask a\n"
      "question over passages given as text (cold: encoded and stored under their ids), precompute the rest\n"
      "of the shipped corpus, ask again naming the passages by id (warm: every block from the store), and\n"
      "in full mode; print the answers and the timings side by side, and check block mode against a\n"
      "from-scratch masked forward and stored blocks against fresh ones. The model's weights are random,\n"
      "so its answers are noise: the demo shows the path, not a language model.");
  sub->add_option("--dir", o->dir, "Keep the model, corpus, prompt and store here (default: a temporary directory, removed)");
  sub->add_option("--preset", o->preset, "tiny or small")->capture_default_str()->check(CLI::IsMember({"tiny", "small"}));
  sub->add_option("--arch", o->arch, "llama3, llama2, mistral or qwen2")->capture_default_str();
  sub->add_option("--question", o->question, "The question")->capture_default_str();
  sub->add_option("--passage", o->passages, "Passage ids of the shipped corpus to put in the prompt (repeat)")
      ->capture_default_str();
  sub->add_option("--new-tokens", o->new_tokens, "Tokens to generate")->capture_default_str()->check(CLI::Range(0, 10000));
  sub->add_flag("--json", o->json, "Print JSON");
  sub->callback([o] {
    const WorkDir work(o->dir, "blockkv-demo");
    const std::string& dir = work.path();
    const std::string model_dir = dir + "/model", store_dir = dir + "/store";
    SyntheticModelSpec spec = Check(SyntheticPreset(o->preset, o->arch));
    spec.seed = 7;
    spec.dtype = DType::kF32;
    Check(WriteSyntheticModel(spec, model_dir));
    auto runtime = Check(Runtime::Open(model_dir));
    auto tokenizer = Check(Tokenizer::Load(model_dir));
    std::error_code ec;
    std::filesystem::remove_all(store_dir, ec);
    auto store = OpenForWrite(store_dir, /*create=*/true);

    // The shipped corpus, written out as a user's would be.
    const std::string corpus_path = dir + "/corpus.jsonl";
    {
      std::ofstream f(corpus_path, std::ios::binary);
      f << DemoCorpusJsonl();
      if (!f) Fail(corpus_path + ": cannot write");
    }
    const std::vector<CorpusEntry> corpus = Check(ReadCorpusFile(corpus_path));
    TextPrompt prompt;
    prompt.question = o->question;
    for (const std::string& id : o->passages) {
      auto it = std::find_if(corpus.begin(), corpus.end(), [&](const CorpusEntry& e) { return e.name == id; });
      if (it == corpus.end()) Fail("--passage " + id + " is not in the shipped corpus (harbor-001 .. harbor-012)");
      prompt.passages.push_back(PassageRef{it->name, it->title, it->text});
    }
    Engine engine(runtime.get(), store.get());
    const ModelFingerprint& fp = runtime->fingerprint();
    const auto answer = [&](EngineRequest req, AttentionMode mode) {
      req.mode = mode;
      req.prefill.all_logits = true;
      req.decode.max_new_tokens = o->new_tokens;
      req.decode.stop_token_ids = tokenizer->config().stop_ids;
      return Check(engine.Run(req));
    };
    // Cold: the passages come as text; each is a miss, encoded and stored under its id.
    const EngineRequest cold_req = Check(BuildTextRequest(prompt, *tokenizer, store.get(), fp));
    EngineResult cold = answer(cold_req, AttentionMode::kBlock);
    // Offline precompute of the rest of the corpus.
    for (const CorpusEntry& e : corpus)
      Check(engine.Precompute(Check(PassageTokens(*tokenizer, kDefaultPassageTemplate, PassageRef{e.name, e.title, e.text})),
                              e.name).status());
    // Warm: the passages named by id only; their blocks and tokens come from the store.
    TextPrompt by_id = prompt;
    for (PassageRef& p : by_id.passages) p.text.clear();
    nlohmann::json prompt_json = {{"question", by_id.question}, {"passages", o->passages}};
    std::ofstream(dir + "/prompt.json") << prompt_json.dump(2) << "\n";
    const EngineRequest req = Check(BuildTextRequest(by_id, *tokenizer, store.get(), fp));
    EngineResult warm = answer(req, AttentionMode::kBlock);
    EngineResult full = answer(req, AttentionMode::kFull);
    const auto text = [&](const EngineResult& r) { return Check(tokenizer->Decode(r.tokens, true)); };

    // The from-scratch reference: the whole prompt with the block mask, positions 0..T-1.
    std::vector<int64_t> sizes;
    const std::vector<int32_t> all = FlattenPrompt(req, &sizes);
    std::vector<int64_t> pos(all.size());
    for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int64_t>(i);
    const auto r0 = std::chrono::steady_clock::now();
    std::vector<float> ref = Check(ReferenceForward(runtime->model(), all, pos, BlockAttentionMask(sizes)));
    const double ref_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - r0).count();
    const size_t vocab = runtime->vocab_size();
    const size_t nf = req.final_tokens.size();
    double max_abs = 0, scale = 0;
    for (size_t i = 0; i < nf * vocab; ++i) {
      const float a = warm.logits[i], b = ref[(all.size() - nf) * vocab + i];
      max_abs = std::max(max_abs, double(std::abs(a - b)));
      scale = std::max(scale, double(std::abs(b)));
    }
    const double rel = max_abs / std::max(scale, 1e-30);
    const bool same_tokens = cold_req.final_tokens == req.final_tokens && cold_req.blocks.size() == req.blocks.size();
    const bool stored_equals_fresh = same_tokens && cold.logits == warm.logits && cold.tokens == warm.tokens;
    // fp32 throughout; the runtime sums in a different order than the double-precision reference, so
    // agreement to 1e-5 of the logit scale is what exactness means here (tests/block_attention_test.cc).
    const bool equal_to_reference = rel <= 1e-5;
    StoreStats st = Check(store->GetStats());

    if (o->json) {
      PrintJson({{"model", {{"preset", o->preset}, {"arch", o->arch}, {"layers", spec.num_layers},
                            {"hidden", spec.hidden_size}}},
                 {"question", o->question},
                 {"passages", o->passages},
                 {"prompt_tokens", all.size()},
                 {"block_sizes", sizes},
                 {"block_cold", TimingJson(cold.timing)},
                 {"block_warm", TimingJson(warm.timing)},
                 {"full", TimingJson(full.timing)},
                 {"reference_max_abs_diff", max_abs},
                 {"reference_max_rel_diff", rel},
                 {"block_equals_masked_reference", equal_to_reference},
                 {"stored_equals_fresh_bitwise", stored_equals_fresh},
                 {"answer_block", text(warm)},
                 {"answer_full", text(full)},
                 {"generated_block", warm.tokens},
                 {"generated_full", full.tokens},
                 {"store", StatsToJson(st)}});
    } else {
      std::printf("blockkv demo: %s %s model (%d layers, hidden %d, random weights), %zu passages of the shipped corpus\n"
                  "stored; the prompt names %zu of them by id: %zu blocks (system, passages) + a %zu-token final block "
                  "= %zu tokens\n\nquestion: %s\n\n",
                  o->preset.c_str(), o->arch.c_str(), spec.num_layers, spec.hidden_size, corpus.size(),
                  o->passages.size(), req.blocks.size(), nf, all.size(), o->question.c_str());
      std::printf("%-22s %14s %14s %14s\n", "", "block (cold)", "block (warm)", "full");
      auto row = [&](const char* name, double a, double b, double c) {
        std::printf("%-22s %14.2f %14.2f %14.2f\n", name, a, b, c);
      };
      row("lookup ms", cold.timing.lookup_ms, warm.timing.lookup_ms, full.timing.lookup_ms);
      row("load ms", cold.timing.load_ms, warm.timing.load_ms, full.timing.load_ms);
      row("encode misses ms", cold.timing.encode_ms, warm.timing.encode_ms, full.timing.encode_ms);
      row("prefill ms", cold.timing.prefill_ms, warm.timing.prefill_ms, full.timing.prefill_ms);
      row("time to first token ms", cold.timing.ttft_ms, warm.timing.ttft_ms, full.timing.ttft_ms);
      row("decode ms", cold.timing.decode_ms, warm.timing.decode_ms, full.timing.decode_ms);
      std::printf("%-22s %14s %14s %14s\n", "hits / misses",
                  (std::to_string(cold.timing.hits) + " / " + std::to_string(cold.timing.misses)).c_str(),
                  (std::to_string(warm.timing.hits) + " / " + std::to_string(warm.timing.misses)).c_str(), "-");
      std::printf("\nblock mode vs from-scratch masked forward (%.0f ms): max |diff| %.3g, relative %.3g -> %s\n",
                  ref_ms, max_abs, rel, equal_to_reference ? "EQUAL (<= 1e-5)" : "DIFFERENT");
      std::printf("stored blocks vs freshly encoded: %s\n", stored_equals_fresh ? "bitwise equal logits" : "DIFFERENT");
      std::printf("answer (block): %s\n", nlohmann::json(text(warm)).dump().c_str());
      std::printf("answer (full):  %s   (random weights: noise; full attention is another computation)\n",
                  nlohmann::json(text(full)).dump().c_str());
      std::printf("store: %llu blocks, %s raw, %s stored\n", static_cast<unsigned long long>(st.blocks),
                  FormatBytes(st.raw_bytes).c_str(), FormatBytes(st.stored_bytes).c_str());
      if (!work.temporary())
        std::printf("\nkept in %s: try\n  blockkv run --model %s --store %s --prompt %s/prompt.json\n", dir.c_str(),
                    model_dir.c_str(), store_dir.c_str(), dir.c_str());
    }
    if (!equal_to_reference || !stored_equals_fresh) Fail("block mode does not match its references", kExitError);
  });
}

}  // namespace

void RegisterRuntimeCommands(CLI::App& app) {
  RegisterMakeModel(app);
  RegisterPrecompute(app);
  RegisterRun(app);
  RegisterDemo(app);
}

}  // namespace blockkv::cli
