#include "attention/prompt_file.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

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
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument(label + ": not valid JSON");
  if (!j.is_object() || !j.contains("blocks"))
    return Status::InvalidArgument(label + ": expected an object with \"blocks\": [[ids...], ..., [final ids...]]");
  const auto& blocks = j["blocks"];
  if (!blocks.is_array() || blocks.empty())
    return Status::InvalidArgument(label + ": \"blocks\" must be a non-empty list of token-id lists");
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

StatusOr<PromptFile> ReadPromptFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParsePrompt(text, path);
}

StatusOr<std::vector<PromptBlock>> ParseCorpus(std::string_view text, const std::string& label) {
  std::vector<PromptBlock> out;
  size_t line_no = 0, pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    ++line_no;
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
      if (end == text.size()) break;
      continue;
    }
    const std::string where = label + ":" + std::to_string(line_no);
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      return Status::InvalidArgument(where + ": not a JSON object");
    PromptBlock b;
    if (!j.contains("tokens")) return Status::InvalidArgument(where + ": no \"tokens\"");
    RETURN_IF_ERROR(ParseIds(j["tokens"], where + ": tokens", &b.tokens));
    if (b.tokens.empty()) return Status::InvalidArgument(where + ": tokens is empty");
    if (j.contains("id")) {
      if (j["id"].is_string()) b.name = j["id"].get<std::string>();
      else if (j["id"].is_number_integer()) b.name = std::to_string(j["id"].get<int64_t>());
      else return Status::InvalidArgument(where + ": id must be a string or an integer");
    }
    out.push_back(std::move(b));
    if (end == text.size()) break;
  }
  return out;
}

StatusOr<std::vector<PromptBlock>> ReadCorpusFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseCorpus(text, path);
}

}  // namespace blockkv
