#include "attention/model/tokenizer.h"

#include <atomic>
#include <fstream>
#include <sstream>

#include "attention/model/bpe.h"
#include "attention/model/normalizer.h"
#include "attention/model/pre_tokenizer.h"
#include "attention/model/token_decoder.h"
#include "attention/model/utf8.h"
#include "db/thread_pool.h"

namespace blockkv {

namespace {

StatusOr<std::string> ReadIfExists(const std::filesystem::path& path, bool required) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (required) return Status::NotFound(path.string() + ": no such file");
    return std::string();
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::IOError(path.string() + ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return Status::IOError(path.string() + ": read failed");
  return ss.str();
}

// A special token in tokenizer_config.json: "text" or {"content": "text", ...}.
std::string TokenText(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  return "";
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::filesystem::path& dir) {
  ASSIGN_OR_RETURN(std::string tok, ReadIfExists(dir / "tokenizer.json", true));
  ASSIGN_OR_RETURN(std::string cfg, ReadIfExists(dir / "tokenizer_config.json", false));
  ASSIGN_OR_RETURN(std::string gen, ReadIfExists(dir / "generation_config.json", false));
  auto t = FromJson(tok, cfg, gen, (dir / "tokenizer.json").string());
  if (!t.ok() && t.status().IsInvalidArgument() && t.status().message().rfind("tokenizer.json", 0) == 0)
    return t.status().WithContext(dir.string());
  return t;
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view tokenizer_json,
                                                         std::string_view config_json,
                                                         std::string_view generation_json,
                                                         const std::string& label) {
  nlohmann::json j = nlohmann::json::parse(tokenizer_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Status::InvalidArgument(label + ": not a JSON object");
  auto t = std::unique_ptr<Tokenizer>(new Tokenizer());
  const nlohmann::json null;
  const auto field = [&](const char* k) -> const nlohmann::json& { return j.contains(k) ? j[k] : null; };
  if (field("truncation").is_object())
    return Status::NotSupported(label + ": truncation (blockkv never truncates a prompt)");
  if (field("padding").is_object()) return Status::NotSupported(label + ": padding");

  ASSIGN_OR_RETURN(t->normalizer_, Normalizer::Load(field("normalizer")));
  ASSIGN_OR_RETURN(t->pre_tokenizer_, PreTokenizer::Load(field("pre_tokenizer")));
  if (!j.contains("model")) return Status::InvalidArgument(label + ": no \"model\"");
  ASSIGN_OR_RETURN(t->model_, Bpe::Load(j["model"], t->pre_tokenizer_->ends_in_byte_level()));
  t->raw_bytes_ = t->pre_tokenizer_->ends_in_byte_level() && t->model_->raw_bytes();
  ASSIGN_OR_RETURN(t->decoder_, TokenDecoder::Load(field("decoder")));

  std::vector<AddedToken> added;
  const auto& list = field("added_tokens");
  if (!list.is_null() && !list.is_array()) return Status::InvalidArgument(label + ": added_tokens is not a list");
  t->id_limit_ = t->model_->IdLimit();
  for (size_t i = 0; list.is_array() && i < list.size(); ++i) {
    const auto& a = list[i];
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0 ||
        a["id"].get<int64_t>() >= (int64_t{1} << 30) || !a.contains("content") || !a["content"].is_string())
      return Status::InvalidArgument(label + ": added_tokens[" + std::to_string(i) + "] needs an \"id\" and a \"content\"");
    AddedToken tok;
    tok.id = static_cast<int32_t>(a["id"].get<int64_t>());
    tok.content = a["content"].get<std::string>();
    tok.single_word = a.value("single_word", false);
    tok.lstrip = a.value("lstrip", false);
    tok.rstrip = a.value("rstrip", false);
    tok.special = a.value("special", false);
    tok.normalized = a.value("normalized", !tok.special);
    t->id_limit_ = std::max(t->id_limit_, tok.id + 1);
    added.push_back(std::move(tok));
  }
  RETURN_IF_ERROR(t->added_.Build(std::move(added), t->normalizer_->identity() ? nullptr : t->normalizer_.get()));
  RETURN_IF_ERROR(t->LoadPostProcessor(field("post_processor")).WithContext(label));
  RETURN_IF_ERROR(t->LoadConfig(config_json, generation_json));
  return t;
}

Status Tokenizer::LoadPostProcessor(const nlohmann::json& spec) {
  if (spec.is_null()) return Status::OK();
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    return Status::InvalidArgument("a post_processor without a \"type\"");
  const std::string type = spec["type"].get<std::string>();
  if (type == "Sequence") {
    if (!spec.contains("processors") || !spec["processors"].is_array())
      return Status::InvalidArgument("post_processor Sequence without a \"processors\" list");
    for (const auto& p : spec["processors"]) RETURN_IF_ERROR(LoadPostProcessor(p));
    return Status::OK();
  }
  if (type == "ByteLevel") return Status::OK();  // it only adjusts offsets
  std::vector<int32_t> before, after;
  if (type == "TemplateProcessing") {
    if (!spec.contains("single") || !spec["single"].is_array())
      return Status::InvalidArgument("TemplateProcessing without a \"single\" template");
    const auto& specials = spec.contains("special_tokens") ? spec["special_tokens"] : nlohmann::json::object();
    bool seen_a = false;
    for (const auto& piece : spec["single"]) {
      if (piece.contains("Sequence")) {
        if (seen_a) return Status::NotSupported("TemplateProcessing with the sequence twice");
        seen_a = true;
      } else if (piece.contains("SpecialToken") && piece["SpecialToken"].contains("id") &&
                 piece["SpecialToken"]["id"].is_string()) {
        const std::string name = piece["SpecialToken"]["id"].get<std::string>();
        if (!specials.contains(name) || !specials[name].contains("ids") || !specials[name]["ids"].is_array())
          return Status::InvalidArgument("TemplateProcessing names special token \"" + name +
                                         "\" without listing its ids");
        for (const auto& id : specials[name]["ids"]) {
          if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (int64_t{1} << 30))
            return Status::InvalidArgument("TemplateProcessing: special token \"" + name + "\" has a bad id");
          (seen_a ? after : before).push_back(static_cast<int32_t>(id.get<int64_t>()));
        }
      } else {
        return Status::InvalidArgument("TemplateProcessing: a piece that is neither Sequence nor SpecialToken");
      }
    }
    if (!seen_a) return Status::InvalidArgument("TemplateProcessing without the sequence");
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    const auto pair_id = [&](const char* k, int32_t* id) -> Status {
      if (!spec.contains(k) || !spec[k].is_array() || spec[k].size() != 2 || !spec[k][1].is_number_integer())
        return Status::InvalidArgument(type + " needs \"" + k + "\": [token, id]");
      *id = static_cast<int32_t>(spec[k][1].get<int64_t>());
      return Status::OK();
    };
    int32_t cls = 0, sep = 0;
    RETURN_IF_ERROR(pair_id("cls", &cls));
    RETURN_IF_ERROR(pair_id("sep", &sep));
    before.push_back(cls);
    after.push_back(sep);
  } else {
    return Status::NotSupported("post_processor \"" + type + "\"");
  }
  // A later processor wraps what the earlier ones produced.
  prefix_ids_.insert(prefix_ids_.begin(), before.begin(), before.end());
  suffix_ids_.insert(suffix_ids_.end(), after.begin(), after.end());
  return Status::OK();
}

Status Tokenizer::LoadConfig(std::string_view config_json, std::string_view generation_json) {
  if (!config_json.empty()) {
    nlohmann::json c = nlohmann::json::parse(config_json, nullptr, false);
    if (c.is_discarded() || !c.is_object())
      return Status::InvalidArgument("tokenizer_config.json: not a JSON object");
    const auto token = [&](const char* k, std::string* out) {
      if (c.contains(k)) *out = TokenText(c[k]);
      if (!out->empty()) config_.template_variables[k] = *out;
    };
    token("bos_token", &config_.bos_token);
    token("eos_token", &config_.eos_token);
    token("pad_token", &config_.pad_token);
    token("unk_token", &config_.unk_token);
    if (c.contains("chat_template")) {
      const auto& ct = c["chat_template"];
      if (ct.is_string()) {
        config_.chat_template = ct.get<std::string>();
      } else if (ct.is_array()) {
        // Named templates: [{"name": "default", "template": "..."}, ...]; the default one is used.
        for (const auto& e : ct)
          if (e.is_object() && e.value("name", std::string()) == "default" && e.contains("template") &&
              e["template"].is_string())
            config_.chat_template = e["template"].get<std::string>();
      } else if (!ct.is_null()) {
        return Status::InvalidArgument("tokenizer_config.json: chat_template is neither a string nor a list");
      }
    }
  }
  const auto add_stop = [&](int32_t id) {
    if (id >= 0 && std::find(config_.stop_ids.begin(), config_.stop_ids.end(), id) == config_.stop_ids.end())
      config_.stop_ids.push_back(id);
  };
  if (!config_.eos_token.empty()) add_stop(TokenToId(config_.eos_token));
  if (!generation_json.empty()) {
    nlohmann::json g = nlohmann::json::parse(generation_json, nullptr, false);
    if (g.is_discarded() || !g.is_object())
      return Status::InvalidArgument("generation_config.json: not a JSON object");
    if (g.contains("eos_token_id")) {
      const auto& e = g["eos_token_id"];
      if (e.is_number_integer()) add_stop(static_cast<int32_t>(e.get<int64_t>()));
      if (e.is_array())
        for (const auto& x : e)
          if (x.is_number_integer()) add_stop(static_cast<int32_t>(x.get<int64_t>()));
    }
  }
  return Status::OK();
}

Status Tokenizer::EncodePiece(std::string_view piece, bool at_origin, std::vector<int32_t>* ids) const {
  const PreTokenizer::Emit emit = [&](std::string_view pre) { return model_->Tokenize(pre, ids); };
  std::string normalized;
  std::string_view text = piece;
  if (!normalizer_->identity()) {
    RETURN_IF_ERROR(normalizer_->Apply(piece, &normalized));
    text = normalized;
  }
  if (!added_.has_normalized()) return pre_tokenizer_->Run(text, at_origin, raw_bytes_, emit);
  std::vector<AddedTokens::Piece> parts;
  added_.Split(text, /*normalized_pass=*/true, &parts);
  for (const auto& p : parts) {
    if (p.id >= 0) {
      ids->push_back(p.id);
    } else {
      RETURN_IF_ERROR(pre_tokenizer_->Run(text.substr(p.begin, p.end - p.begin), at_origin && p.begin == 0,
                                          raw_bytes_, emit));
    }
  }
  return Status::OK();
}

StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  const size_t bad = utf8::FindInvalid(text);
  if (bad != std::string_view::npos)
    return Status::InvalidArgument("text is not valid UTF-8 at byte " + std::to_string(bad));
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special_tokens) ids = prefix_ids_;
  std::vector<AddedTokens::Piece> parts;
  added_.Split(text, /*normalized_pass=*/false, &parts);
  for (const auto& p : parts) {
    if (p.id >= 0) {
      ids.push_back(p.id);
    } else {
      RETURN_IF_ERROR(EncodePiece(text.substr(p.begin, p.end - p.begin), p.begin == 0, &ids));
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  return ids;
}

Status Tokenizer::EncodeBatch(std::span<const std::string> texts, bool add_special_tokens,
                              std::vector<std::vector<int32_t>>* out, int threads) const {
  out->assign(texts.size(), {});
  std::vector<Status> errors(texts.size());
  std::atomic<bool> failed{false};
  const auto one = [&](size_t i) {
    if (failed.load(std::memory_order_relaxed)) return;
    auto r = Encode(texts[i], add_special_tokens);
    if (r.ok()) {
      (*out)[i] = std::move(r).value();
    } else {
      errors[i] = r.status().WithContext("text " + std::to_string(i));
      failed = true;
    }
  };
  if (threads == 1 || texts.size() < 2) {
    for (size_t i = 0; i < texts.size(); ++i) one(i);
  } else if (threads <= 0) {
    std::call_once(pool_once_, [&] { pool_ = std::make_unique<ThreadPool>(0); });
    pool_->ParallelFor(texts.size(), one);
  } else {
    ThreadPool pool(threads - 1);
    pool.ParallelFor(texts.size(), one);
  }
  for (Status& s : errors)
    if (!s.ok()) return s;
  return Status::OK();
}

int32_t Tokenizer::TokenToId(std::string_view token) const {
  if (const AddedToken* a = added_.FindContent(token)) return a->id;
  return model_->TokenToId(token);
}

std::string Tokenizer::IdToToken(int32_t id) const {
  if (const AddedToken* a = added_.Find(id)) return a->content;
  const std::string* t = model_->IdToToken(id);
  return t ? *t : std::string();
}

bool Tokenizer::IsSpecial(int32_t id) const {
  const AddedToken* a = added_.Find(id);
  return a != nullptr && a->special;
}

StatusOr<std::string> Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (const AddedToken* a = added_.Find(id)) {
      if (skip_special_tokens && a->special) continue;
      // A normalized added token decodes as its normalized form (what the decoder expects).
      std::string text = a->content;
      if (a->normalized && !normalizer_->identity()) RETURN_IF_ERROR(normalizer_->Apply(a->content, &text));
      tokens.push_back(std::move(text));
    } else if (const std::string* t = model_->IdToToken(id)) {
      tokens.push_back(*t);
    }
  }
  std::string out;
  RETURN_IF_ERROR(decoder_->Decode(std::move(tokens), &out));
  return out;
}

// ---- TextStream ----

TextStream::TextStream(const Tokenizer* tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

Status TextStream::Push(int32_t id, std::string* out) {
  ids_.push_back(id);
  ASSIGN_OR_RETURN(std::string text, tokenizer_->Decode(ids_, skip_special_));
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  const bool incomplete = text.size() >= 3 && text.compare(text.size() - 3, 3, kReplacement) == 0;
  if (text.size() <= prefix_.size() || incomplete) return Status::OK();
  if (text.compare(0, prefix_.size(), prefix_) != 0)
    return Status::Internal("decoded text changed below the part already released");
  out->append(text, prefix_.size(), std::string::npos);
  // Keep the ids just released as context for the next ones (decoders look at their neighbours).
  const size_t released = ids_.size() - prefix_ids_;
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_ids_));
  ASSIGN_OR_RETURN(prefix_, tokenizer_->Decode(ids_, skip_special_));
  prefix_ids_ = released;
  return Status::OK();
}

Status TextStream::Finish(std::string* out) {
  ASSIGN_OR_RETURN(std::string text, tokenizer_->Decode(ids_, skip_special_));
  if (text.size() > prefix_.size() && text.compare(0, prefix_.size(), prefix_) == 0)
    out->append(text, prefix_.size(), std::string::npos);
  ids_.clear();
  prefix_.clear();
  prefix_ids_ = 0;
  return Status::OK();
}

}  // namespace blockkv
