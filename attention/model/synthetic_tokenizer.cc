#include "attention/model/synthetic_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "attention/model/bpe.h"
#include "attention/model/regex.h"
#include "attention/model/utf8.h"

namespace blockkv {

namespace {

using nlohmann::json;

constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kMeta = "\u2581";

std::vector<std::string> SpecialNames(SyntheticTokenizerStyle style) {
  switch (style) {
    case SyntheticTokenizerStyle::kLlama3:
      return {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
    case SyntheticTokenizerStyle::kQwen2:
      return {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    case SyntheticTokenizerStyle::kLlama2:
      return {"<unk>", "<s>", "</s>"};
  }
  return {};
}

// Chat templates of blockkv's own writing, in the manner of each family.
const char* ChatTemplate(SyntheticTokenizerStyle style) {
  switch (style) {
    case SyntheticTokenizerStyle::kLlama3:
      return "{{- bos_token }}\n"
             "{%- for message in messages %}\n"
             "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}\n"
             "{%- endfor %}\n"
             "{%- if add_generation_prompt %}\n"
             "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
             "{%- endif %}\n";
    case SyntheticTokenizerStyle::kQwen2:
      return "{%- for message in messages %}\n"
             "    {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}\n"
             "{%- endfor %}\n"
             "{%- if add_generation_prompt %}\n"
             "    {{- '<|im_start|>assistant\\n' }}\n"
             "{%- endif %}\n";
    case SyntheticTokenizerStyle::kLlama2:
      return "{{- bos_token }}\n"
             "{%- if messages[0].role == 'system' %}\n"
             "    {%- set system = messages[0].content %}\n"
             "    {%- set messages = messages[1:] %}\n"
             "{%- endif %}\n"
             "{%- for message in messages %}\n"
             "    {%- if message.role == 'user' %}\n"
             "        {{- '[INST] ' }}\n"
             "        {%- if loop.first and system is defined %}\n"
             "            {{- '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' }}\n"
             "        {%- endif %}\n"
             "        {{- message.content + ' [/INST]' }}\n"
             "    {%- elif message.role == 'assistant' %}\n"
             "        {{- ' ' + message.content | trim + ' ' + eos_token }}\n"
             "    {%- endif %}\n"
             "{%- endfor %}\n";
  }
  return "";
}

// The text the merges are learned from: the demo corpus's titles and passages.
std::vector<std::string> TrainingTexts() {
  std::vector<std::string> texts;
  std::string_view all = DemoCorpusJsonl();
  size_t pos = 0;
  while (pos < all.size()) {
    size_t end = all.find('\n', pos);
    if (end == std::string_view::npos) end = all.size();
    const json j = json::parse(all.substr(pos, end - pos), nullptr, false);
    if (j.is_object()) {
      if (j.contains("title") && j["title"].is_string()) texts.push_back(j["title"].get<std::string>());
      if (j.contains("text") && j["text"].is_string()) texts.push_back(j["text"].get<std::string>());
    }
    pos = end + 1;
  }
  return texts;
}

// A deterministic BPE trainer: words are sequences of symbol ids with a count; each round merges the
// most frequent adjacent pair (ties: the smaller pair of strings), until `max_merges` or no pair occurs
// twice. `names` holds each id's string and grows with each merge.
std::vector<std::pair<int32_t, int32_t>> TrainMerges(std::map<std::vector<int32_t>, int64_t> words,
                                                     std::vector<std::string>* names, int max_merges) {
  std::vector<std::pair<int32_t, int32_t>> merges;
  while (static_cast<int>(merges.size()) < max_merges) {
    std::map<std::pair<int32_t, int32_t>, int64_t> counts;
    for (const auto& [w, n] : words)
      for (size_t i = 0; i + 1 < w.size(); ++i) counts[{w[i], w[i + 1]}] += n;
    std::pair<int32_t, int32_t> best{-1, -1};
    int64_t best_n = 1;
    for (const auto& [p, n] : counts) {
      if (n < best_n) continue;
      if (n == best_n && best.first >= 0 &&
          std::tie((*names)[p.first], (*names)[p.second]) >= std::tie((*names)[best.first], (*names)[best.second]))
        continue;
      if (n == 1) continue;
      best = p;
      best_n = n;
    }
    if (best.first < 0) break;
    const int32_t id = static_cast<int32_t>(names->size());
    names->push_back((*names)[best.first] + (*names)[best.second]);
    merges.push_back(best);
    std::map<std::vector<int32_t>, int64_t> next;
    for (const auto& [w, n] : words) {
      std::vector<int32_t> m;
      for (size_t i = 0; i < w.size(); ++i) {
        if (i + 1 < w.size() && w[i] == best.first && w[i + 1] == best.second) {
          m.push_back(id);
          ++i;
        } else {
          m.push_back(w[i]);
        }
      }
      next[m] += n;
    }
    words.swap(next);
  }
  return merges;
}

std::string Mapped(std::string_view raw) {
  std::string s;
  for (char c : raw) utf8::Append(ByteToChar(static_cast<uint8_t>(c)), &s);
  return s;
}

json AddedToken(int32_t id, const std::string& content) {
  return {{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},   {"normalized", false}, {"special", true}};
}

json BosTemplate(const std::string& bos, int32_t id) {
  return {{"type", "TemplateProcessing"},
          {"single", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
          {"pair",
           {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
            {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
            {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
            {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
          {"special_tokens", {{bos, {{"id", bos}, {"ids", {id}}, {"tokens", {bos}}}}}}};
}

Status WriteText(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return Status::IOError(tmp.string() + ": cannot create");
    f << text;
    if (!f) return Status::IOError(tmp.string() + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::IOError(path.string() + ": cannot rename into place: " + ec.message());
  return Status::OK();
}

}  // namespace

StatusOr<SyntheticTokenizerLayout> SyntheticTokenizerIds(SyntheticTokenizerStyle style, int vocab_size,
                                                         int32_t special_base) {
  const int n = static_cast<int>(SpecialNames(style).size());
  SyntheticTokenizerLayout l;
  if (style == SyntheticTokenizerStyle::kLlama2) {
    if (vocab_size < 300) return Status::InvalidArgument("a SentencePiece-style tokenizer needs a vocabulary of >= 300");
    l.bos = 1;
    l.eos = 2;
    l.stop_ids = {2};
    return l;
  }
  if (vocab_size < 256 + n + 16)
    return Status::InvalidArgument("a byte-level tokenizer needs a vocabulary of >= " + std::to_string(256 + n + 16));
  const int32_t base = special_base >= 0 ? special_base : vocab_size - n;
  if (base < 256 + 16 || base + n > vocab_size)
    return Status::InvalidArgument("special tokens at " + std::to_string(base) + " do not fit a vocabulary of " +
                                   std::to_string(vocab_size));
  if (style == SyntheticTokenizerStyle::kLlama3) {
    l.bos = base;
    l.eos = base + 4;  // <|eot_id|>
    l.stop_ids = {base + 1, base + 4};
  } else {
    l.bos = base;      // <|endoftext|> (Qwen2's config names it bos; no BOS is added to text)
    l.eos = base + 2;  // <|im_end|>
    l.stop_ids = {base, base + 2};
  }
  return l;
}

Status WriteSyntheticTokenizer(SyntheticTokenizerStyle style, int vocab_size, int32_t special_base,
                               const std::string& dir) {
  ASSIGN_OR_RETURN(SyntheticTokenizerLayout layout, SyntheticTokenizerIds(style, vocab_size, special_base));
  const std::vector<std::string> specials = SpecialNames(style);
  const std::vector<std::string> texts = TrainingTexts();
  json vocab = json::object(), merges = json::array(), added = json::array();
  json tok;
  if (style == SyntheticTokenizerStyle::kLlama2) {
    // <unk> <s> </s>, the 256 byte tokens, every character of the training text, then merges.
    std::vector<std::string> names = specials;
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      names.push_back(name);
    }
    std::map<std::string, int32_t> chars;
    std::map<std::vector<int32_t>, int64_t> words;
    std::vector<std::vector<std::string>> word_chars;
    std::map<std::vector<std::string>, int64_t> raw_words;
    for (const std::string& t : texts) {
      // Metaspace: spaces become ▁, one ▁ in front; words start at each ▁.
      std::vector<std::string> w;
      const std::string m = kMeta + [&] {
        std::string r;
        for (char c : t) r += c == ' ' ? std::string(kMeta) : std::string(1, c);
        return r;
      }();
      size_t i = 0;
      while (i < m.size()) {
        const size_t start = i;
        utf8::Next(m, &i);
        const std::string c = m.substr(start, i - start);
        if (c == kMeta && !w.empty()) {
          ++raw_words[w];
          w.clear();
        }
        w.push_back(c);
        chars.emplace(c, 0);
      }
      if (!w.empty()) ++raw_words[w];
    }
    for (auto& [c, id] : chars) {
      id = static_cast<int32_t>(names.size());
      names.push_back(c);
    }
    for (const auto& [w, n] : raw_words) {
      std::vector<int32_t> ids;
      for (const std::string& c : w) ids.push_back(chars[c]);
      words[ids] += n;
    }
    const int room = vocab_size - static_cast<int>(names.size());
    if (room < 0) return Status::InvalidArgument("vocabulary too small for the training text's characters");
    const auto learned = TrainMerges(std::move(words), &names, room);
    for (size_t id = 0; id < names.size(); ++id) vocab[names[id]] = id;
    for (const auto& [a, b] : learned) merges.push_back({names[a], names[b]});
    for (int i = 0; i < 3; ++i) added.push_back(AddedToken(i, specials[i]));
    tok = {{"version", "1.0"},
           {"truncation", nullptr},
           {"padding", nullptr},
           {"added_tokens", added},
           {"normalizer", nullptr},
           {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "first"}, {"split", false}}},
           {"post_processor", BosTemplate("<s>", 1)},
           {"decoder",
            {{"type", "Sequence"},
             {"decoders",
              {{{"type", "Replace"}, {"pattern", {{"String", kMeta}}}, {"content", " "}},
               {{"type", "ByteFallback"}},
               {{"type", "Fuse"}},
               {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
           {"model",
            {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", "<unk>"}, {"continuing_subword_prefix", nullptr},
             {"end_of_word_suffix", nullptr}, {"fuse_unk", true}, {"byte_fallback", true}, {"ignore_merges", false},
             {"vocab", vocab}, {"merges", merges}}}};
  } else {
    // Byte-level: ids 0..255 are the bytes (GPT-2's mapping), merges follow, specials at layout.bos.
    std::vector<std::string> names;
    for (int b = 0; b < 256; ++b) names.push_back(std::string(1, static_cast<char>(b)));
    ASSIGN_OR_RETURN(auto re, Regex::Compile(kLlama3Pattern));
    std::map<std::vector<int32_t>, int64_t> words;
    for (const std::string& t : texts) {
      std::vector<std::pair<size_t, size_t>> m;
      RETURN_IF_ERROR(re->FindAll(t, &m));
      for (auto [a, b] : m) {
        std::vector<int32_t> w;
        for (size_t i = a; i < b; ++i) w.push_back(static_cast<uint8_t>(t[i]));
        ++words[w];
      }
    }
    const auto learned = TrainMerges(std::move(words), &names, layout.bos - 256);
    for (size_t id = 0; id < names.size(); ++id) vocab[Mapped(names[id])] = id;
    for (const auto& [a, b] : learned) merges.push_back({Mapped(names[a]), Mapped(names[b])});
    for (size_t i = 0; i < specials.size(); ++i) added.push_back(AddedToken(layout.bos + static_cast<int32_t>(i), specials[i]));
    const bool llama = style == SyntheticTokenizerStyle::kLlama3;
    const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", !llama ? false : true},
                             {"use_regex", false}};
    tok = {{"version", "1.0"},
           {"truncation", nullptr},
           {"padding", nullptr},
           {"added_tokens", added},
           {"normalizer", llama ? json(nullptr) : json({{"type", "NFC"}})},
           {"pre_tokenizer",
            {{"type", "Sequence"},
             {"pretokenizers",
              {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3Pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
               byte_level}}}},
           {"post_processor",
            llama ? json({{"type", "Sequence"},
                          {"processors",
                           {{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}},
                            BosTemplate(specials[0], layout.bos)}}})
                  : json({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}})},
           {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
           {"model",
            {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
             {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", llama},
             {"vocab", vocab}, {"merges", merges}}}};
  }
  json config = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                 {"chat_template", ChatTemplate(style)},
                 {"clean_up_tokenization_spaces", false},
                 {"model_max_length", 131072}};
  if (style == SyntheticTokenizerStyle::kLlama3) {
    config["bos_token"] = specials[0];
    config["eos_token"] = specials[4];
  } else if (style == SyntheticTokenizerStyle::kQwen2) {
    config["bos_token"] = nullptr;
    config["eos_token"] = specials[2];
    config["pad_token"] = specials[0];
  } else {
    config["bos_token"] = "<s>";
    config["eos_token"] = "</s>";
    config["unk_token"] = "<unk>";
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  RETURN_IF_ERROR(WriteText(std::filesystem::path(dir) / "tokenizer.json", tok.dump() + "\n"));
  return WriteText(std::filesystem::path(dir) / "tokenizer_config.json", config.dump(2) + "\n");
}

}  // namespace blockkv
