// tokenize: a model's tokenizer from the shell (text → ids, or ids → text with --decode).
#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <sstream>

#include "attention/model/tokenizer.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace blockkv::cli {

namespace {

std::string ReadStdin() {
  std::ostringstream ss;
  ss << std::cin.rdbuf();
  return ss.str();
}

// Ids from "1 2 3", "1,2,3" or a JSON list "[1, 2, 3]".
std::vector<int32_t> ParseIdList(const std::string& text) {
  std::vector<int32_t> ids;
  std::string tok;
  const auto flush = [&] {
    if (tok.empty()) return;
    char* end = nullptr;
    const long long v = std::strtoll(tok.c_str(), &end, 10);
    if (*end != '\0' || v < 0 || v > INT32_MAX) Fail("--decode: '" + tok + "' is not a token id");
    ids.push_back(static_cast<int32_t>(v));
    tok.clear();
  };
  for (char c : text) {
    if (c == '[' || c == ']' || c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      flush();
    } else {
      tok.push_back(c);
    }
  }
  flush();
  return ids;
}

}  // namespace

void RegisterTokenizeCommand(CLI::App& app) {
  struct Opts {
    std::string model, text;
    bool decode = false, json = false, no_special = false, skip_special = false, lines = false, jsonl = false;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "tokenize",
      "Tokenize text with a model's tokenizer.json, exactly as Hugging Face `tokenizers` does (or decode ids).\n"
      "Text comes from --text or standard input; ids are printed space-separated (--json: a JSON object).\n"
      "Examples:\n"
      "  echo 'Hello world' | blockkv tokenize --model DIR\n"
      "  blockkv tokenize --model DIR --text 'Hello' --json\n"
      "  blockkv tokenize --model DIR --decode --text '9906 1917'\n"
      "  blockkv tokenize --model DIR --lines < corpus.txt      # one id line per input line, on every core\n"
      "  blockkv tokenize --model DIR --lines --jsonl < texts.jsonl");
  sub->add_option("--model", o->model, "Model directory holding tokenizer.json (and tokenizer_config.json)")->required();
  sub->add_option("--text", o->text, "The text (or, with --decode, the ids); default: standard input");
  sub->add_flag("--decode", o->decode, "Decode: read token ids (space/comma separated or a JSON list), print text");
  sub->add_flag("--no-special", o->no_special,
                "Encode without the post-processor's special tokens (e.g. no <|begin_of_text|>)");
  sub->add_flag("--skip-special", o->skip_special, "Decode: leave special tokens out of the text");
  sub->add_flag("--lines", o->lines, "Encode each input line separately (the batch API, on --threads threads)");
  sub->add_flag("--jsonl", o->jsonl,
                "With --lines: each input line is a JSON string (or {\"text\": ...}), so texts may hold newlines");
  sub->add_option("--threads", o->threads, "Threads for --lines (0: every core)")->capture_default_str();
  sub->add_flag("--json", o->json, "Print a JSON object (ids, count, text, timing)");
  sub->callback([o] {
    auto tok = Check(Tokenizer::Load(o->model));
    const std::string input = o->text.empty() ? ReadStdin() : o->text;
    const auto t0 = std::chrono::steady_clock::now();
    const auto ms = [&] {
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    };
    if (o->decode) {
      const std::vector<int32_t> ids = ParseIdList(input);
      for (int32_t id : ids)
        if (id >= tok->id_limit()) Fail("--decode: id " + std::to_string(id) + " is beyond the vocabulary (" +
                                        std::to_string(tok->id_limit()) + ")");
      const std::string text = Check(tok->Decode(ids, o->skip_special));
      if (o->json) {
        PrintJson({{"text", text}, {"count", ids.size()}, {"ms", ms()}});
      } else {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fputc('\n', stdout);
      }
      return;
    }
    if (o->lines) {
      std::vector<std::string> lines;
      std::istringstream in(input);
      size_t number = 0;
      for (std::string line; std::getline(in, line);) {
        ++number;
        if (o->jsonl) {
          // A JSON string, or an object with a "text" string.
          auto j = nlohmann::json::parse(line, nullptr, false);
          if (j.is_object() && j.contains("text")) j = j["text"];
          if (!j.is_string()) Fail("line " + std::to_string(number) + ": not a JSON string or {\"text\": ...}");
          line = j.get<std::string>();
        }
        lines.push_back(std::move(line));
      }
      std::vector<std::vector<int32_t>> ids;
      Check(tok->EncodeBatch(lines, !o->no_special, &ids, o->threads));
      const double elapsed = ms();
      size_t count = 0, bytes = 0;
      for (const auto& v : ids) count += v.size();
      for (const auto& l : lines) bytes += l.size();
      if (o->json) {
        PrintJson({{"ids", ids}, {"lines", lines.size()}, {"count", count}, {"bytes", bytes},
                   {"ms", elapsed}, {"mb_per_s", bytes / 1e3 / std::max(elapsed, 1e-6)}});
        return;
      }
      std::string out;
      for (const auto& v : ids) {
        for (size_t i = 0; i < v.size(); ++i) {
          if (i) out.push_back(' ');
          out += std::to_string(v[i]);
        }
        out.push_back('\n');
      }
      std::fwrite(out.data(), 1, out.size(), stdout);
      return;
    }
    const std::vector<int32_t> ids = Check(tok->Encode(input, !o->no_special));
    if (o->json) {
      nlohmann::json tokens = nlohmann::json::array();
      for (int32_t id : ids) tokens.push_back(tok->IdToToken(id));
      PrintJson({{"ids", ids}, {"tokens", tokens}, {"count", ids.size()}, {"ms", ms()}});
      return;
    }
    std::string out;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) out.push_back(' ');
      out += std::to_string(ids[i]);
    }
    out.push_back('\n');
    std::fwrite(out.data(), 1, out.size(), stdout);
  });
}

}  // namespace blockkv::cli
