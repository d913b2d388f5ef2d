// precompute: encode a corpus's passages and store their KV blocks.
#include <chrono>
#include <cstdio>
#include <unistd.h>

#include "attention/engine.h"
#include "attention/prompt_file.h"
#include "attention/text_prompt.h"
#include "tools/cli_util.h"
#include "tools/commands.h"
#include "tools/runtime_util.h"

namespace blockkv::cli {

void RegisterPrecompute(CLI::App& app) {
  struct Opts {
    std::string model, store, corpus, kv_dtype, device = "cpu", codec, passage_template = kDefaultPassageTemplate;
    bool json = false, skip_bad = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "precompute",
      "Encode every passage of a corpus and store its KV block under the passage's id, skipping passages\n"
      "already stored. Safe to interrupt and rerun. The corpus is JSON Lines, one passage per line:\n"
      "  {\"id\": \"doc-17\", \"title\": \"Port Velland\", \"text\": \"...\"}   text (title optional), tokenized\n"
      "                                                                with the model's tokenizer.json\n"
      "  {\"id\": \"doc-18\", \"tokens\": [ids...]}                            token ids, stored as they are\n"
      "A text passage's block is its --passage-template rendering; prompts that name the passage by id use\n"
      "the stored block as it is.\n"
      "Example: blockkv precompute --model M --store S --corpus passages.jsonl");
  sub->add_option("--model", o->model, "HF model directory")->required();
  sub->add_option("--store", o->store, "Store directory (created if missing)")->required();
  sub->add_option("--corpus", o->corpus, "Passages, JSON Lines")->required();
  sub->add_option("--passage-template", o->passage_template,
                  "How a text passage becomes its block's text; {title}, {text}, {id} are replaced (the default "
                  "drops the title line when a passage has no title)")
      ->capture_default_str();
  sub->add_flag("--skip-bad", o->skip_bad,
                "Skip malformed corpus lines (counted and reported) instead of stopping at the first");
  sub->add_option("--kv-dtype", o->kv_dtype, "Stored KV dtype: f32, bf16, f16 (default: f32 on cpu, bf16 on cuda)");
  AddCodecOption(sub, &o->codec);
  AddDeviceOption(sub, &o->device);
  sub->add_flag("--json", o->json, "Print a JSON summary");
  sub->callback([o] {
    const std::string text = Check(ReadFileToString(o->corpus));
    std::vector<CorpusLine> lines = ParseCorpusLines(text, o->corpus);
    size_t bad = 0;
    bool any_text = false;
    for (const CorpusLine& l : lines) {
      if (!l.entry.ok()) {
        if (!o->skip_bad) Fail(l.entry.status().ToString() + " (--skip-bad skips such lines)");
        ++bad;
        std::fprintf(stderr, "blockkv: skipped: %s\n", l.entry.status().ToString().c_str());
      } else {
        any_text = any_text || l.entry->is_text();
      }
    }
    std::unique_ptr<Tokenizer> tokenizer = any_text ? LoadTokenizer(o->model, true) : nullptr;
    // Tokenize every text passage before storing anything, so a bad line stops the run cleanly.
    std::vector<CorpusEntry> passages;
    for (CorpusLine& l : lines) {
      if (!l.entry.ok()) continue;
      CorpusEntry e = std::move(l.entry).value();
      if (e.is_text()) {
        auto ids = PassageTokens(*tokenizer, o->passage_template, PassageRef{e.name, e.title, e.text});
        if (!ids.ok() || ids->empty()) {
          const std::string why = o->corpus + ":" + std::to_string(e.line) + ": text: " +
                                  (ids.ok() ? std::string("no tokens") : ids.status().message());
          if (!o->skip_bad) Fail(why + " (--skip-bad skips such lines)");
          ++bad;
          std::fprintf(stderr, "blockkv: skipped: %s\n", why.c_str());
          continue;
        }
        e.tokens = std::move(ids).value();
      }
      passages.push_back(std::move(e));
    }
    Backend backend = OpenBackend(o->device, o->model);
    auto store = OpenForWrite(o->store, /*create=*/true, o->codec);
    EngineOptions eo;
    eo.kv_dtype = ParseKvDType(o->kv_dtype, o->device);
    Engine engine(backend.backend.get(), store.get(), eo);
    size_t encoded = 0, present = 0, tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const bool progress = isatty(2) && !o->json;
    for (size_t i = 0; i < passages.size(); ++i) {
      bool was = false;
      auto id = engine.Precompute(passages[i].tokens, passages[i].name, &was);
      if (!id.ok())
        Fail(id.status().WithContext(o->corpus + ":" + std::to_string(passages[i].line) + " (passage " +
                                     passages[i].name + ")"));
      was ? ++present : ++encoded;
      tokens += passages[i].tokens.size();
      if (progress)
        std::fprintf(stderr, "\r%zu/%zu passages (%zu encoded, %zu already stored)", i + 1, passages.size(),
                     encoded, present);
    }
    if (progress) std::fprintf(stderr, "\n");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    StoreStats st = Check(store->GetStats());
    if (o->json) {
      PrintJson({{"passages", passages.size()}, {"encoded", encoded}, {"already_stored", present},
                 {"skipped_bad_lines", bad}, {"tokens", tokens}, {"seconds", secs}, {"store", StatsToJson(st)}});
    } else {
      std::printf("%zu passages (%zu tokens): %zu encoded and stored, %zu already stored", passages.size(), tokens,
                  encoded, present);
      if (bad > 0) std::printf(", %zu malformed lines skipped", bad);
      std::printf(" (%.2f s); store holds %llu blocks, %s\n", secs, static_cast<unsigned long long>(st.blocks),
                  FormatBytes(st.stored_bytes).c_str());
    }
  });
}

}  // namespace blockkv::cli
