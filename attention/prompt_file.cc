#include "attention/prompt_file.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "attention/model/utf8.h"

namespace blockkv {

namespace {

Status ParseIds(const nlohmann::json& j, const std::string& where, std::vector<int32_t>* out) {
  if (!j.is_array()) return Status::InvalidArgument(where + " is not a list of token ids");
  out->clear();
  out->reserve(j.size());
  for (const auto& t : j) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)
      return Status::InvalidArgument(where + " holds something that is not a token id (a non-negative int)");
    out->push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return Status::OK();
}

// An optional string field; InvalidArgument if present and not a string.
Status OptionalString(const nlohmann::json& j, const char* key, const std::string& where, std::string* out) {
  if (!j.contains(key) || j[key].is_null()) return Status::OK();
  if (!j[key].is_string()) return Status::InvalidArgument(where + ": \"" + key + "\" is not a string");
  *out = j[key].get<std::string>();
  return Status::OK();
}

// A passage id: a string or an integer.
Status ParseId(const nlohmann::json& j, const std::string& where, std::string* out) {
  if (j.is_string()) {
    *out = j.get<std::string>();
  } else if (j.is_number_integer()) {
    *out = std::to_string(j.get<int64_t>());
  } else {
    return Status::InvalidArgument(where + " must be a string or an integer");
  }
  if (out->empty()) return Status::InvalidArgument(where + " is empty");
  return Status::OK();
}

// Calls fn(line number, line) for every line of `text` that is not blank (split on "\n" only).
template <typename Fn>
void ForEachLine(std::string_view text, Fn&& fn) {
  size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    ++line_no;
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") != std::string_view::npos) fn(line_no, line);
  }
}

// Parses JSON text, naming invalid UTF-8 by offset (nlohmann rejects it too, less clearly).
StatusOr<nlohmann::json> ParseJson(std::string_view text, const std::string& label) {
  const size_t bad = utf8::FindInvalid(text);
  if (bad != std::string_view::npos)
    return Status::InvalidArgument(label + ": invalid UTF-8 at byte " + std::to_string(bad));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument(label + ": not valid JSON");
  return j;
}

StatusOr<PromptFile> ParseTextPrompt(const nlohmann::json& j, const std::string& label) {
  PromptFile p;
  p.kind = PromptFile::Kind::kText;
  if (!j["question"].is_string()) return Status::InvalidArgument(label + ": \"question\" is not a string");
  p.text.question = j["question"].get<std::string>();
  if (p.text.question.empty()) return Status::InvalidArgument(label + ": \"question\" is empty");
  RETURN_IF_ERROR(OptionalString(j, "system", label, &p.text.system));
  std::string format;
  RETURN_IF_ERROR(OptionalString(j, "format", label, &format));
  if (!format.empty()) {
    p.text.format = ParsePromptFormatKind(format);
    if (!p.text.format) return Status::InvalidArgument(label + ": \"format\" must be \"chat\" or \"paper\"");
  }
  if (j.contains("passages")) {
    const auto& ps = j["passages"];
    if (!ps.is_array()) return Status::InvalidArgument(label + ": \"passages\" is not a list");
    for (size_t i = 0; i < ps.size(); ++i) {
      const std::string where = label + ": passages[" + std::to_string(i) + "]";
      PassageRef r;
      if (ps[i].is_string() || ps[i].is_number_integer()) {
        RETURN_IF_ERROR(ParseId(ps[i], where, &r.id));
      } else if (ps[i].is_object()) {
        const auto& o = ps[i];
        if (o.contains("id")) RETURN_IF_ERROR(ParseId(o["id"], where + ".id", &r.id));
        RETURN_IF_ERROR(OptionalString(o, "text", where, &r.text));
        RETURN_IF_ERROR(OptionalString(o, "title", where, &r.title));
        if (o.contains("text") && r.text.empty()) return Status::InvalidArgument(where + ".text is empty");
        if (r.text.empty() && r.id.empty()) return Status::InvalidArgument(where + " has neither \"id\" nor \"text\"");
      } else {
        return Status::InvalidArgument(where + " is neither a passage id nor {\"text\": ...}");
      }
      p.text.passages.push_back(std::move(r));
    }
  }
  return p;
}

StatusOr<PromptFile> ParseTokenPrompt(const nlohmann::json& j, const std::string& label) {
  const auto& blocks = j["blocks"];
  PromptFile p;
  for (size_t i = 0; i + 1 < blocks.size(); ++i) {
    PromptBlock b;
    RETURN_IF_ERROR(ParseIds(blocks[i], label + ": blocks[" + std::to_string(i) + "]", &b.tokens));
    if (b.tokens.empty()) return Status::InvalidArgument(label + ": blocks[" + std::to_string(i) + "] is empty");
    p.blocks.push_back(std::move(b));
  }
  RETURN_IF_ERROR(ParseIds(blocks.back(), label + ": the final block", &p.final_tokens));
  if (p.final_tokens.empty()) return Status::InvalidArgument(label + ": the final block is empty");
  if (j.contains("names")) {
    const auto& names = j["names"];
    if (!names.is_array() || names.size() != p.blocks.size())
      return Status::InvalidArgument(label + ": \"names\" must list one name per non-final block (" +
                                     std::to_string(p.blocks.size()) + ")");
    for (size_t i = 0; i < names.size(); ++i) {
      if (!names[i].is_string() && !names[i].is_null())
        return Status::InvalidArgument(label + ": names[" + std::to_string(i) + "] is not a string");
      if (names[i].is_string()) p.blocks[i].name = names[i].get<std::string>();
    }
  }
  return p;
}

StatusOr<PromptFile> ParsePromptJson(const nlohmann::json& j, const std::string& label) {
  if (!j.is_object())
    return Status::InvalidArgument(label + ": expected an object with \"question\" (text) or \"blocks\"");
  StatusOr<PromptFile> p = Status::InvalidArgument("");
  if (j.contains("question")) {
    p = ParseTextPrompt(j, label);
  } else if (j.contains("blocks")) {
    const auto& blocks = j["blocks"];
    if (!blocks.is_array() || blocks.empty())
      return Status::InvalidArgument(label + ": \"blocks\" must be a non-empty list");
    if (blocks[0].is_string()) {
      PromptFile t;
      t.kind = PromptFile::Kind::kTextBlocks;
      for (size_t i = 0; i < blocks.size(); ++i) {
        if (!blocks[i].is_string() || blocks[i].get_ref<const std::string&>().empty())
          return Status::InvalidArgument(label + ": blocks[" + std::to_string(i) + "] is not a non-empty string");
        t.text_blocks.blocks.push_back(blocks[i].get<std::string>());
      }
      p = std::move(t);
    } else {
      p = ParseTokenPrompt(j, label);
    }
  } else {
    return Status::InvalidArgument(label + ": expected an object with \"question\" (text) or \"blocks\"");
  }
  if (p.ok()) p->label = label;
  return p;
}

}  // namespace

StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::IOError(path + ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return Status::IOError(path + ": read failed");
  return ss.str();
}

StatusOr<PromptFile> ParsePrompt(std::string_view text, const std::string& label) {
  ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(text, label));
  return ParsePromptJson(j, label);
}

StatusOr<std::vector<PromptFile>> ParsePrompts(std::string_view text, const std::string& label) {
  // One JSON document (which may span lines), else JSON Lines.
  if (utf8::IsValid(text)) {
    nlohmann::json whole = nlohmann::json::parse(text, nullptr, false);
    if (!whole.is_discarded()) {
      ASSIGN_OR_RETURN(PromptFile p, ParsePromptJson(whole, label));
      return std::vector<PromptFile>{std::move(p)};
    }
  }
  std::vector<PromptFile> out;
  Status error;
  ForEachLine(text, [&](size_t line_no, std::string_view line) {
    if (!error.ok()) return;
    auto p = ParsePrompt(line, label + ":" + std::to_string(line_no));
    if (p.ok()) {
      out.push_back(std::move(p).value());
    } else {
      error = p.status();
    }
  });
  RETURN_IF_ERROR(error);
  if (out.empty()) return Status::InvalidArgument(label + ": no prompt");
  return out;
}

StatusOr<std::vector<PromptFile>> ReadPromptFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParsePrompts(text, path);
}

StatusOr<CorpusEntry> ParseCorpusLine(std::string_view line, const std::string& where) {
  ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(line, where));
  if (!j.is_object()) return Status::InvalidArgument(where + ": not a JSON object");
  CorpusEntry e;
  const bool has_text = j.contains("text"), has_tokens = j.contains("tokens");
  if (has_text == has_tokens)
    return Status::InvalidArgument(where + ": needs exactly one of \"text\" and \"tokens\"");
  // A text passage is addressed by its id; a token-id line may go without one (as before text).
  if (j.contains("id")) {
    RETURN_IF_ERROR(ParseId(j["id"], where + ": id", &e.name));
  } else if (has_text) {
    return Status::InvalidArgument(where + ": no \"id\"");
  }
  if (has_tokens) {
    RETURN_IF_ERROR(ParseIds(j["tokens"], where + ": tokens", &e.tokens));
    if (e.tokens.empty()) return Status::InvalidArgument(where + ": tokens is empty");
    return e;
  }
  RETURN_IF_ERROR(OptionalString(j, "text", where, &e.text));
  if (e.text.empty()) return Status::InvalidArgument(where + ": text is empty");
  RETURN_IF_ERROR(OptionalString(j, "title", where, &e.title));
  return e;
}

std::vector<CorpusLine> ParseCorpusLines(std::string_view text, const std::string& label) {
  std::vector<CorpusLine> out;
  ForEachLine(text, [&](size_t line_no, std::string_view line) {
    auto e = ParseCorpusLine(line, label + ":" + std::to_string(line_no));
    if (e.ok()) e->line = line_no;
    out.push_back(CorpusLine{line_no, std::move(e)});
  });
  return out;
}

StatusOr<std::vector<CorpusEntry>> ParseCorpus(std::string_view text, const std::string& label) {
  std::vector<CorpusEntry> out;
  for (CorpusLine& l : ParseCorpusLines(text, label)) {
    if (!l.entry.ok()) return l.entry.status();
    out.push_back(std::move(l.entry).value());
  }
  return out;
}

StatusOr<std::vector<CorpusEntry>> ReadCorpusFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseCorpus(text, path);
}

}  // namespace blockkv
