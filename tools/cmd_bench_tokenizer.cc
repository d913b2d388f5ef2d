// bench-tokenizer: the tokenizer's throughput on a text file, one thread and the batch API on every core.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "attention/model/tokenizer.h"
#include "attention/prompt_file.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace blockkv::cli {

void RegisterBenchTokenizerCommand(CLI::App& app) {
  struct Opts {
    std::vector<std::string> models;
    std::string text, json_out;
    int repeats = 3, threads = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "bench-tokenizer",
      "Tokenizer throughput (MB/s of UTF-8 input, tokens/s): encode every line of a text file on one thread,\n"
      "then with the batch API on --threads threads (0: every core); best of --repeats after a warm-up.\n"
      "The text is JSON Lines of strings (or {\"text\": ...}), as tests/data/make_tokenizer_text.py writes.\n"
      "tests/oracle/tokenizer_bench.py measures HF tokenizers the same way (docs/benchmarks.md).");
  sub->add_option("--model", o->models, "Model directory with tokenizer.json (repeat for several)")->required();
  sub->add_option("--text", o->text, "Text file, JSON Lines of strings")->required();
  sub->add_option("--repeats", o->repeats, "Timed passes per measurement (the best is reported)")
      ->capture_default_str()->check(CLI::Range(1, 100));
  sub->add_option("--threads", o->threads, "Threads of the batch measurement (0: every core)")->capture_default_str();
  sub->add_option("--json", o->json_out, "Also write the results as JSON to this file");
  sub->callback([o] {
    const std::string blob = Check(ReadFileToString(o->text));
    std::vector<std::string> lines;
    size_t bytes = 0, pos = 0, number = 0;
    while (pos < blob.size()) {
      size_t end = blob.find('\n', pos);
      if (end == std::string::npos) end = blob.size();
      ++number;
      const std::string_view line(blob.data() + pos, end - pos);
      pos = end + 1;
      if (line.empty()) continue;
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("text")) j = j["text"];
      if (!j.is_string()) Fail(o->text + ":" + std::to_string(number) + ": not a JSON string or {\"text\": ...}");
      lines.push_back(j.get<std::string>());
      bytes += lines.back().size();
    }
    const int threads = o->threads > 0 ? o->threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    nlohmann::json results = nlohmann::json::array();
    std::printf("%s: %zu lines, %.2f MB; best of %d after a warm-up\n", o->text.c_str(), lines.size(), bytes / 1e6,
                o->repeats);
    std::printf("%-28s %10s %12s %14s %12s %14s\n", "tokenizer", "tokens", "1 thread MB/s", "tokens/s", "batch MB/s",
                "threads");
    for (const std::string& model : o->models) {
      auto tok = Check(Tokenizer::Load(model));
      size_t tokens = 0;
      const auto pass = [&](int n) {
        std::vector<std::vector<int32_t>> ids;
        const auto t0 = std::chrono::steady_clock::now();
        Check(tok->EncodeBatch(lines, false, &ids, n));
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        tokens = 0;
        for (const auto& v : ids) tokens += v.size();
        return s;
      };
      pass(1);  // warm-up (and the per-thread caches, as HF's warm-up pass fills its own)
      double one = 1e30, many = 1e30;
      for (int r = 0; r < o->repeats; ++r) one = std::min(one, pass(1));
      for (int r = 0; r < o->repeats; ++r) many = std::min(many, pass(threads));
      std::printf("%-28s %10zu %12.2f %14.0f %12.2f %14d\n", model.c_str(), tokens, bytes / 1e6 / one, tokens / one,
                  bytes / 1e6 / many, threads);
      results.push_back({{"model", model}, {"lines", lines.size()}, {"bytes", bytes}, {"tokens", tokens},
                         {"one_thread_s", one}, {"one_thread_mb_per_s", bytes / 1e6 / one},
                         {"one_thread_tokens_per_s", tokens / one}, {"batch_threads", threads}, {"batch_s", many},
                         {"batch_mb_per_s", bytes / 1e6 / many}});
    }
    if (!o->json_out.empty()) {
      std::ofstream f(o->json_out);
      f << nlohmann::json{{"text", o->text}, {"results", results}}.dump(2) << "\n";
      if (!f) Fail(o->json_out + ": cannot write");
    }
  });
}

}  // namespace blockkv::cli
