#include "tools/server/openai_api.h"

#include <algorithm>
#include <cmath>


namespace blockkv::serve {

namespace {

using nlohmann::json;

Status Bad(const std::string& field, const std::string& why) {
  return Status::InvalidArgument("'" + field + "': " + why);
}

// A number field within [lo, hi], or `fallback` when absent or null.
StatusOr<double> Number(const json& body, const char* field, double lo, double hi, double fallback) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number()) return Bad(field, "must be a number");
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < lo || v > hi)
    return Bad(field, "must be between " + json(lo).dump() + " and " + json(hi).dump());
  return v;
}

StatusOr<PassageRef> ParsePassage(const json& p, size_t i) {
  const std::string field = "passages[" + std::to_string(i) + "]";
  PassageRef ref;
  if (p.is_string()) {
    ref.id = p.get<std::string>();
    if (ref.id.empty()) return Bad(field, "an empty passage id");
    return ref;
  }
  if (!p.is_object()) return Bad(field, "must be a stored passage id (a string) or an object with \"text\"");
  for (const char* k : {"id", "title", "text"}) {
    auto it = p.find(k);
    if (it != p.end() && !it->is_null() && !it->is_string()) return Bad(field + "." + k, "must be a string");
  }
  ref.id = p.value("id", std::string());
  ref.title = p.value("title", std::string());
  ref.text = p.value("text", std::string());
  if (ref.text.empty()) {
    if (ref.id.empty()) return Bad(field, "needs \"text\" (or \"id\" of a stored passage)");
  }
  return ref;
}

// The text of a chat message's content: a string, or OpenAI's array of {"type": "text", "text"} parts.
StatusOr<std::string> ContentText(const json& m, size_t i) {
  const std::string field = "messages[" + std::to_string(i) + "].content";
  auto it = m.find("content");
  if (it == m.end() || it->is_null()) return Bad(field, "missing");
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array()) return Bad(field, "must be a string or an array of text parts");
  std::string text;
  for (const json& part : *it) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
      return Bad(field, "only text parts ({\"type\": \"text\", \"text\": ...}) are supported");
    text += part["text"].get<std::string>();
  }
  return text;
}

// The length of the longest prefix of `s` that ends on a UTF-8 character boundary and is at most `n` bytes.
size_t Utf8Floor(const std::string& s, size_t n) {
  n = std::min(n, s.size());
  while (n > 0 && n < s.size() && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

}  // namespace

StatusOr<CompletionRequest> ParseCompletionRequest(const json& body, bool chat, const RequestLimits& limits) {
  if (!body.is_object()) return Status::InvalidArgument("the request body must be a JSON object");
  CompletionRequest r;
  r.chat = chat;
  if (body.contains("model") && body["model"].is_string()) r.model = body["model"].get<std::string>();
  if (chat) {
    auto it = body.find("messages");
    if (it == body.end() || !it->is_array() || it->empty()) return Bad("messages", "must be a non-empty array");
    // System messages make the system text; the last message must be the user's question. Earlier turns of a
    // conversation are not supported: block attention's final block is one question.
    for (size_t i = 0; i < it->size(); ++i) {
      const json& m = (*it)[i];
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
        return Bad("messages[" + std::to_string(i) + "]", "must be an object with a \"role\"");
      const std::string role = m["role"].get<std::string>();
      ASSIGN_OR_RETURN(std::string text, ContentText(m, i));
      if (role == "system" || role == "developer") {
        r.prompt.system += (r.prompt.system.empty() ? "" : "\n") + text;
      } else if (role == "user" && i + 1 == it->size()) {
        r.prompt.question = text;
      } else if (role == "user" || role == "assistant") {
        return Bad("messages", "only system messages and one final user message are supported (no earlier turns)");
      } else {
        return Bad("messages[" + std::to_string(i) + "].role", "unknown role '" + role + "'");
      }
    }
    if (r.prompt.question.empty()) return Bad("messages", "the last message must be the user's, with text");
  } else {
    auto it = body.find("prompt");
    if (it == body.end() || !it->is_string()) return Bad("prompt", "must be a string");
    r.prompt.question = it->get<std::string>();
    if (r.prompt.question.empty()) return Bad("prompt", "is empty");
  }
  if (auto it = body.find("passages"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) return Bad("passages", "must be an array");
    if (static_cast<int>(it->size()) > limits.max_passages)
      return Bad("passages", "at most " + std::to_string(limits.max_passages) + " per request (got " +
                                 std::to_string(it->size()) + ")");
    for (size_t i = 0; i < it->size(); ++i) {
      ASSIGN_OR_RETURN(PassageRef p, ParsePassage((*it)[i], i));
      r.prompt.passages.push_back(std::move(p));
    }
  }
  const char* max_field = chat && body.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  ASSIGN_OR_RETURN(double max_tokens, Number(body, max_field, 1, limits.max_tokens, limits.default_max_tokens));
  if (max_tokens != std::floor(max_tokens)) return Bad(max_field, "must be an integer");
  r.max_tokens = static_cast<int>(max_tokens);
  ASSIGN_OR_RETURN(double temperature, Number(body, "temperature", 0, 2, 1));
  ASSIGN_OR_RETURN(double top_p, Number(body, "top_p", 0, 1, 1));
  ASSIGN_OR_RETURN(double top_k, Number(body, "top_k", 0, 1 << 20, 0));
  ASSIGN_OR_RETURN(double seed, Number(body, "seed", 0, 9007199254740991.0, 0));
  ASSIGN_OR_RETURN(double n, Number(body, "n", 1, 1, 1));
  (void)n;
  r.sampling.temperature = static_cast<float>(temperature);
  r.sampling.top_p = static_cast<float>(top_p);
  r.sampling.top_k = static_cast<int>(top_k);
  r.sampling.seed = static_cast<uint64_t>(seed);
  if (auto it = body.find("stop"); it != body.end() && !it->is_null()) {
    if (it->is_string()) {
      r.stop.push_back(it->get<std::string>());
    } else if (it->is_array()) {
      for (const json& s : *it) {
        if (!s.is_string()) return Bad("stop", "must be a string or an array of strings");
        r.stop.push_back(s.get<std::string>());
      }
    } else {
      return Bad("stop", "must be a string or an array of strings");
    }
    if (static_cast<int>(r.stop.size()) > limits.max_stop)
      return Bad("stop", "at most " + std::to_string(limits.max_stop) + " stop strings");
    for (const std::string& s : r.stop)
      if (s.empty()) return Bad("stop", "an empty stop string");
  }
  if (auto it = body.find("stream"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) return Bad("stream", "must be true or false");
    r.stream = it->get<bool>();
  }
  if (auto it = body.find("stream_options"); it != body.end() && it->is_object())
    r.include_usage = it->value("include_usage", false);
  return r;
}

StatusOr<std::vector<PassageRef>> ParsePassagesRequest(const json& body, const RequestLimits& limits) {
  if (!body.is_object()) return Status::InvalidArgument("the request body must be a JSON object");
  auto it = body.find("passages");
  if (it == body.end() || !it->is_array() || it->empty()) return Bad("passages", "must be a non-empty array");
  const size_t most = static_cast<size_t>(limits.max_passages) * 16;
  if (it->size() > most)
    return Bad("passages", "at most " + std::to_string(most) + " per call (got " + std::to_string(it->size()) + ")");
  std::vector<PassageRef> out;
  for (size_t i = 0; i < it->size(); ++i) {
    ASSIGN_OR_RETURN(PassageRef p, ParsePassage((*it)[i], i));
    if (p.id.empty() || p.text.empty()) return Bad("passages[" + std::to_string(i) + "]", "needs \"id\" and \"text\"");
    out.push_back(std::move(p));
  }
  return out;
}

std::string StopMatcher::Push(const std::string& piece) {
  if (stopped_) return {};
  pending_ += piece;
  size_t cut = std::string::npos;
  size_t longest = 0;
  for (const std::string& s : stop_) {
    longest = std::max(longest, s.size());
    const size_t at = pending_.find(s);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, cut);
    pending_.clear();
    return out;
  }
  // Keep the last longest - 1 bytes: they may begin a stop string that the next piece completes.
  const size_t keep = longest > 0 ? longest - 1 : 0;
  const size_t n = Utf8Floor(pending_, pending_.size() > keep ? pending_.size() - keep : 0);
  std::string out = pending_.substr(0, n);
  pending_.erase(0, n);
  return out;
}

std::string StopMatcher::Finish() {
  std::string out;
  if (!stopped_) out.swap(pending_);
  return out;
}

json BlockkvExtension(const EngineResult& r, const std::vector<std::string>& names) {
  json blocks = json::array();
  for (size_t i = 0; i < r.block_ids.size(); ++i) {
    json b = {{"id", r.block_ids[i].ToHex()}, {"tier", BlockSourceName(r.block_source[i])}};
    if (i < names.size() && !names[i].empty()) b["name"] = names[i];
    blocks.push_back(std::move(b));
  }
  return {{"blocks", blocks}, {"timing", TimingToJson(r.timing)}};
}

json CompletionResponse(const CompletionRequest& req, const CompletionOutput& out) {
  const EngineTiming& t = out.result->timing;
  json choice = {{"index", 0}, {"finish_reason", out.finish_reason}, {"logprobs", nullptr}};
  if (req.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", out.text}};
  } else {
    choice["text"] = out.text;
  }
  return {{"id", out.id},
          {"object", req.chat ? "chat.completion" : "text_completion"},
          {"created", out.created},
          {"model", req.model},
          {"choices", json::array({choice})},
          {"usage",
           {{"prompt_tokens", t.prompt_tokens},
            {"completion_tokens", t.generated_tokens},
            {"total_tokens", t.prompt_tokens + t.generated_tokens}}},
          {"blockkv", BlockkvExtension(*out.result, out.block_names)}};
}

json CompletionChunk(const CompletionRequest& req, const std::string& id, int64_t created, const std::string& delta,
                     const std::string& finish_reason, bool first) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason.empty() ? json(nullptr) : json(finish_reason)}};
  if (req.chat) {
    json d = json::object();
    if (first) d["role"] = "assistant";
    if (!delta.empty() || finish_reason.empty()) d["content"] = delta;
    choice["delta"] = d;
  } else {
    choice["text"] = delta;
    choice["logprobs"] = nullptr;
  }
  return {{"id", id},
          {"object", req.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", req.model},
          {"choices", json::array({choice})}};
}

json ErrorBody(const std::string& message, const std::string& type, int status) {
  return {{"error", {{"message", message}, {"type", type}, {"code", status}}}};
}

}  // namespace blockkv::serve
