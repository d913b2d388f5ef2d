// run: answer prompts (text or token ids) through the engine, streaming the answer as text.
#include <cstdio>
#include <fstream>

#include "attention/engine.h"
#include "attention/prompt_file.h"
#include "attention/text_prompt.h"
#include "tools/cli_util.h"
#include "tools/commands.h"
#include "tools/npy.h"
#include "tools/runtime_util.h"

namespace blockkv::cli {

namespace {

struct RunOpts {
  std::string model, store, prompt, mode = "block", logits_out, kv_dtype, device = "cpu", codec;
  std::string question, system, format, passage_template = kDefaultPassageTemplate;
  std::vector<std::string> passages;
  int max_new_tokens = 16;
  bool all_logits = false, json = false, no_store = false, no_stream = false;
  float temperature = 0, top_p = 1;
  int top_k = 0;
  uint64_t seed = 0;
  std::vector<int32_t> stop;
  std::string host_tier, gpu_tier, tier_policy = "tinylfu", metrics_out;
};

EngineRequest BuildRequest(const PromptFile& pf, const Tokenizer* tokenizer, BlockStore* store,
                           const ModelFingerprint& model, const TextPromptOptions& topts) {
  EngineRequest req;
  switch (pf.kind) {
    case PromptFile::Kind::kTokenIds:
      req.blocks = pf.blocks;
      req.final_tokens = pf.final_tokens;
      return req;
    case PromptFile::Kind::kText: {
      if (tokenizer == nullptr) Fail(pf.label + ": a text prompt needs the model's tokenizer.json");
      auto r = BuildTextRequest(pf.text, *tokenizer, store, model, topts);
      if (!r.ok()) Fail(r.status().WithContext(pf.label));
      return std::move(r).value();
    }
    case PromptFile::Kind::kTextBlocks: {
      if (tokenizer == nullptr) Fail(pf.label + ": a text prompt needs the model's tokenizer.json");
      auto r = BuildTextBlocksRequest(pf.text_blocks, *tokenizer);
      if (!r.ok()) Fail(r.status().WithContext(pf.label));
      return std::move(r).value();
    }
  }
  return req;
}

void PrintTimingText(const std::string& mode, const ModelBackend& backend, const EngineTiming& t) {
  std::fprintf(stderr, "%s mode on %s, %d prompt tokens, %d hits / %d misses", mode.c_str(), backend.name().c_str(),
               t.prompt_tokens, t.hits, t.misses);
  if (t.gpu_hits + t.host_hits > 0)
    std::fprintf(stderr, " (of the hits: %d from the GPU tier, re-encoded in %.2f ms of GPU time; %d from the host tier)",
                 t.gpu_hits, t.gpu_ms, t.host_hits);
  std::fprintf(stderr, "\n");
  if (t.streamed) {
    std::fprintf(stderr,
                 "lookup %.2f ms, encode %.2f ms, prefill with the hits streamed in %.2f ms (reads %.2f ms over the "
                 "reader threads, prefill waited %.2f ms for them) -> first token %.2f ms; decode %.2f ms",
                 t.lookup_ms, t.encode_ms, t.prefill_ms, t.load_ms, t.stream_wait_ms, t.ttft_ms, t.decode_ms);
  } else {
    std::fprintf(stderr, "lookup %.2f ms, load %.2f ms, encode %.2f ms, prefill %.2f ms -> first token %.2f ms; decode %.2f ms",
                 t.lookup_ms, t.load_ms, t.encode_ms, t.prefill_ms, t.ttft_ms, t.decode_ms);
  }
  if (t.store_ms > 0) std::fprintf(stderr, "; stored misses %.2f ms", t.store_ms);
  std::fprintf(stderr, "\n");
}

}  // namespace

void RegisterRun(CLI::App& app) {
  auto o = std::make_shared<RunOpts>();
  CLI::App* sub = app.add_subcommand(
      "run",
      "Answer prompts. Block mode takes each passage's stored KV block (encoding and storing misses),\n"
      "re-encodes its positions and prefills only the final block; full mode prefills the whole prompt\n"
      "with causal attention (the baseline). The answer is printed as text as it is generated.\n"
      "A prompt file holds one prompt, or many as JSON Lines (one engine answers them all in turn):\n"
      "  {\"question\": \"...\", \"passages\": [\"doc-17\", {\"text\": \"...\", \"title\": \"...\"}], \"system\": \"...\"}\n"
      "      passages by their stored id (no text needed) or by text\n"
      "  {\"prompt\": \"...\", \"blocks\": [\"block text\", ..., \"final block text\"], \"response\": \"...\"}\n"
      "      Block-Attention's own data (the seed's JSONL), each block tokenized as it is\n"
      "  {\"blocks\": [[ids...], ..., [final ids...]], \"names\": [\"p1\", ...]}   token ids\n"
      "Examples:\n"
      "  blockkv run --model M --store S --question 'How tall is the lighthouse?' --passage harbor-002\n"
      "  blockkv run --model M --store S --prompt prompts.jsonl --json");
  sub->add_option("--model", o->model, "HF model directory")->required();
  sub->add_option("--store", o->store, "Store directory (created if missing; needed in block mode)");
  sub->add_option("--prompt", o->prompt, "Prompt file: one JSON prompt, or JSON Lines of prompts");
  sub->add_option("--question", o->question, "The question (instead of --prompt)");
  sub->add_option("--passage", o->passages, "With --question: a stored passage id (repeat for several)");
  sub->add_option("--system", o->system, "With --question: the system text");
  sub->add_option("--format", o->format,
                  "Prompt format of text prompts: chat (the model's chat template) or paper (Block-Attention's "
                  "Tulu3-Block-FT format); default: chat when the model has a chat template, else paper")
      ->check(CLI::IsMember({"chat", "paper"}));
  sub->add_option("--passage-template", o->passage_template,
                  "How a passage given as text becomes its block ({title}, {text}, {id}); must match precompute's")
      ->capture_default_str();
  sub->add_option("--mode", o->mode, "block or full")->capture_default_str()->check(CLI::IsMember({"block", "full"}));
  sub->add_option("--max-new-tokens", o->max_new_tokens, "Tokens to generate (0: prefill only)")->capture_default_str();
  sub->add_option("--temperature", o->temperature, "0 = greedy")->capture_default_str();
  sub->add_option("--top-k", o->top_k, "Sample among the k most likely (0 = all)")->capture_default_str();
  sub->add_option("--top-p", o->top_p, "Nucleus sampling threshold")->capture_default_str();
  sub->add_option("--seed", o->seed, "Sampling seed")->capture_default_str();
  sub->add_option("--stop", o->stop, "Stop token ids (default: the model's eos_token_id and its tokenizer's end-of-turn)");
  sub->add_option("--logits-out", o->logits_out, "Write float32 .npy logits: (vocab,) for the last position (one prompt)");
  sub->add_flag("--all-logits", o->all_logits, "With --logits-out: (final_tokens, vocab), every final-block position");
  sub->add_option("--kv-dtype", o->kv_dtype,
                  "Dtype of blocks stored on a miss: f32, bf16, f16 (default: f32 on cpu, bf16 on cuda)");
  sub->add_flag("--no-store", o->no_store, "Do not store blocks that were missing");
  AddCodecOption(sub, &o->codec);
  AddDeviceOption(sub, &o->device);
  sub->add_flag("--no-stream", o->no_stream,
                "On cuda: load every stored block before the prefill instead of streaming them in layer by "
                "layer while it runs (same logits; for comparison)");
  sub->add_option("--host-tier", o->host_tier,
                  "Keep blocks in host memory across the prompts of this run, up to SIZE (e.g. 2G; pinned on cuda, "
                  "copied straight to the GPU); each block's source (gpu, host, store, encoded) is in --json")
      ->check(SizeValidator());
  sub->add_option("--gpu-tier", o->gpu_tier,
                  "On cuda: keep blocks in GPU memory across the prompts of this run, up to SIZE (e.g. 8G), and "
                  "re-encode them in place at each prompt's offsets")
      ->check(SizeValidator());
  sub->add_option("--tier-policy", o->tier_policy,
                  "Admission and eviction of the tiers: tinylfu (scan-resistant, the default), 2q or lru")
      ->capture_default_str()
      ->check(CLI::IsMember({"tinylfu", "2q", "lru"}));
  sub->add_option("--metrics", o->metrics_out,
                  "At the end, write the engine's metrics to this file: Prometheus text if it ends in .prom, else JSON");
  sub->add_flag("--json", o->json,
                "Print JSON: the answer's text and ids, each block (id, name, hit, source) and the timings; one line "
                "per prompt when there are several");
  sub->callback([o] {
    std::vector<PromptFile> prompts;
    if (!o->prompt.empty() && !o->question.empty()) Fail("give --prompt or --question, not both", 2);
    if (!o->prompt.empty()) {
      prompts = Check(ReadPromptFile(o->prompt));
    } else if (!o->question.empty()) {
      PromptFile p;
      p.kind = PromptFile::Kind::kText;
      p.label = "--question";
      p.text.question = o->question;
      p.text.system = o->system;
      for (const std::string& id : o->passages) p.text.passages.push_back(PassageRef{id, "", ""});
      prompts.push_back(std::move(p));
    } else {
      Fail("give a --prompt file or a --question", 2);
    }
    if (!o->logits_out.empty() && prompts.size() != 1) Fail("--logits-out needs a single prompt");
    bool needs_tokenizer = false;
    for (const PromptFile& p : prompts) needs_tokenizer |= p.kind != PromptFile::Kind::kTokenIds;
    std::unique_ptr<Tokenizer> tokenizer = LoadTokenizer(o->model, needs_tokenizer);
    Backend backend = OpenBackend(o->device, o->model);
    const ModelConfig& config = backend.backend->config();
    std::unique_ptr<BlockStore> store;
    const bool block = o->mode == "block";
    if (block && o->store.empty()) Fail("block mode needs --store (use --mode full to run without one)");
    if (!o->store.empty()) store = OpenForWrite(o->store, /*create=*/true, o->codec);
    EngineOptions eo;
    eo.kv_dtype = ParseKvDType(o->kv_dtype, o->device);
    eo.store_misses = !o->no_store && block;
    eo.stream_layers = !o->no_stream;
    if (!o->host_tier.empty()) eo.host_tier_bytes = *ParseSize(o->host_tier);
    if (!o->gpu_tier.empty()) {
      if (!backend.backend->device_tier()) Fail("--gpu-tier needs --device cuda", 2);
      if (o->no_stream) Fail("--gpu-tier needs the streamed prefill: drop --no-stream", 2);
      eo.gpu_tier_bytes = *ParseSize(o->gpu_tier);
    }
    eo.tier_policy = *ParseCachePolicyKind(o->tier_policy);
    Engine engine(backend.backend.get(), store.get(), eo);
    TextPromptOptions topts;
    if (!o->format.empty()) topts.format = ParsePromptFormatKind(o->format);
    topts.passage_template = o->passage_template;
    std::vector<int32_t> stops = o->stop;
    if (stops.empty()) {
      stops = config.eos_token_ids;
      if (tokenizer)
        for (int32_t id : tokenizer->config().stop_ids)
          if (std::find(stops.begin(), stops.end(), id) == stops.end()) stops.push_back(id);
    }

    for (size_t n = 0; n < prompts.size(); ++n) {
      const PromptFile& pf = prompts[n];
      EngineRequest req = BuildRequest(pf, tokenizer.get(), store.get(), backend.backend->fingerprint(), topts);
      req.mode = block ? AttentionMode::kBlock : AttentionMode::kFull;
      req.prefill.all_logits = o->all_logits;
      req.decode.max_new_tokens = o->max_new_tokens;
      req.decode.sampling = {o->temperature, o->top_k, o->top_p, o->seed};
      req.decode.stop_token_ids = stops;
      // Text out as it comes (not with --json, which prints it whole at the end).
      std::unique_ptr<TextStream> stream;
      Status stream_error;
      if (tokenizer && !o->json) {
        stream = std::make_unique<TextStream>(tokenizer.get(), /*skip_special_tokens=*/true);
        if (prompts.size() > 1) WriteOut("[" + pf.label + "] ");
        req.decode.on_token = [&](int32_t id) {
          std::string piece;
          Status s = stream->Push(id, &piece);
          if (!s.ok() && stream_error.ok()) stream_error = s;
          if (!piece.empty()) WriteOut(piece);
        };
      }
      EngineResult r = Check(engine.Run(req));
      Check(stream_error);
      if (!o->logits_out.empty()) {
        const int64_t vocab = config.vocab_size;
        std::vector<int64_t> shape = o->all_logits ? std::vector<int64_t>{int64_t(r.logits.size()) / vocab, vocab}
                                                   : std::vector<int64_t>{vocab};
        Check(WriteNpy(o->logits_out, r.logits, shape));
      }
      if (o->json) {
        nlohmann::json blocks = nlohmann::json::array();
        for (size_t i = 0; i < r.block_ids.size(); ++i) {
          nlohmann::json b = {{"id", r.block_ids[i].ToHex()}, {"hit", bool(r.block_hit[i])},
                              {"source", BlockSourceName(r.block_source[i])}};
          if (i < req.blocks.size() && !req.blocks[i].name.empty()) b["name"] = req.blocks[i].name;
          blocks.push_back(b);
        }
        nlohmann::json j = {{"mode", o->mode}, {"device", backend.backend->name()}, {"tokens", r.tokens},
                            {"blocks", blocks}, {"timing", TimingJson(r.timing)}};
        if (prompts.size() > 1) j["prompt"] = pf.label;
        if (tokenizer) j["text"] = Check(tokenizer->Decode(r.tokens, /*skip_special_tokens=*/true));
        if (prompts.size() > 1) {
          WriteOut(j.dump() + "\n");
        } else {
          PrintJson(j);
        }
        continue;
      }
      if (stream) {
        std::string rest;
        Check(stream->Finish(&rest));
        WriteOut(rest + "\n");
      } else {
        std::string ids = "generated:";
        for (int32_t tok : r.tokens) ids += " " + std::to_string(tok);
        WriteOut(ids + "\n");
      }
      PrintTimingText(o->mode, *backend.backend, r.timing);
    }
    if (!o->metrics_out.empty()) {
      const bool prom = o->metrics_out.size() > 5 && o->metrics_out.compare(o->metrics_out.size() - 5, 5, ".prom") == 0;
      std::ofstream f(o->metrics_out);
      f << (prom ? engine.metrics().ToPrometheus() : engine.metrics().ToJson().dump(2) + "\n");
      if (!f) Fail(o->metrics_out + ": cannot write");
    }
  });
}

}  // namespace blockkv::cli
