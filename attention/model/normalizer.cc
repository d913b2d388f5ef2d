#include "attention/model/normalizer.h"

#include <nlohmann/json.hpp>
#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>

#include "attention/model/utf8.h"

namespace blockkv {

std::string ReplaceAll(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  if (from.empty()) return std::string(text);
  out.reserve(text.size());
  size_t pos = 0;
  while (true) {
    const size_t hit = text.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(text.substr(pos));
  return out;
}

// "pattern": {"String": "..."} or {"Regex": "..."}.
Status ParseReplacePattern(const nlohmann::json& spec, const std::string& where, std::string* pattern,
                    bool* is_regex) {
  if (!spec.contains("pattern") || !spec["pattern"].is_object())
    return Status::InvalidArgument("tokenizer.json: " + where + " has no \"pattern\" object");
  const auto& p = spec["pattern"];
  if (p.contains("String") && p["String"].is_string()) {
    *pattern = p["String"].get<std::string>();
    *is_regex = false;
  } else if (p.contains("Regex") && p["Regex"].is_string()) {
    *pattern = p["Regex"].get<std::string>();
    *is_regex = true;
  } else {
    return Status::InvalidArgument("tokenizer.json: " + where + ".pattern is neither {\"String\"} nor {\"Regex\"}");
  }
  return Status::OK();
}

namespace {

const icu::Normalizer2* IcuNormalizer(int kind) {
  UErrorCode err = U_ZERO_ERROR;
  switch (kind) {
    case 0: return icu::Normalizer2::getNFCInstance(err);
    case 1: return icu::Normalizer2::getNFDInstance(err);
    case 2: return icu::Normalizer2::getNFKCInstance(err);
    default: return icu::Normalizer2::getNFKDInstance(err);
  }
}

bool IsAscii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

}  // namespace


Status Normalizer::AddSteps(const nlohmann::json& spec, std::vector<Step>* steps) {
  if (spec.is_null()) return Status::OK();
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    return Status::InvalidArgument("tokenizer.json: a normalizer without a \"type\"");
  const std::string type = spec["type"].get<std::string>();
  Step step;
  if (type == "Sequence") {
    if (!spec.contains("normalizers") || !spec["normalizers"].is_array())
      return Status::InvalidArgument("tokenizer.json: normalizer Sequence without a \"normalizers\" list");
    for (const auto& n : spec["normalizers"]) RETURN_IF_ERROR(AddSteps(n, steps));
    return Status::OK();
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    step.kind = type == "NFC" ? Step::kNfc : type == "NFD" ? Step::kNfd : type == "NFKC" ? Step::kNfkc : Step::kNfkd;
    if (IcuNormalizer(step.kind - Step::kNfc) == nullptr)
      return Status::Internal("ICU: no " + type + " normalizer");
  } else if (type == "Prepend") {
    if (!spec.contains("prepend") || !spec["prepend"].is_string())
      return Status::InvalidArgument("tokenizer.json: normalizer Prepend without a \"prepend\" string");
    step.kind = Step::kPrepend;
    step.a = spec["prepend"].get<std::string>();
  } else if (type == "Replace") {
    bool is_regex = false;
    RETURN_IF_ERROR(ParseReplacePattern(spec, "normalizer Replace", &step.a, &is_regex));
    if (!spec.contains("content") || !spec["content"].is_string())
      return Status::InvalidArgument("tokenizer.json: normalizer Replace without a \"content\" string");
    step.b = spec["content"].get<std::string>();
    step.kind = is_regex ? Step::kReplaceRegex : Step::kReplaceString;
    if (is_regex) {
      ASSIGN_OR_RETURN(step.regex, Regex::Compile(step.a));
    }
  } else if (type == "Strip") {
    step.kind = Step::kStrip;
    step.left = spec.value("strip_left", false);
    step.right = spec.value("strip_right", false);
  } else {
    return Status::NotSupported("tokenizer.json: normalizer \"" + type + "\"");
  }
  steps->push_back(std::move(step));
  return Status::OK();
}

StatusOr<std::unique_ptr<Normalizer>> Normalizer::Load(const nlohmann::json& spec) {
  auto n = std::unique_ptr<Normalizer>(new Normalizer());
  RETURN_IF_ERROR(AddSteps(spec, &n->steps_));
  return n;
}

Status Normalizer::Apply(std::string_view text, std::string* out) const {
  std::string cur(text), next;
  for (const Step& s : steps_) {
    switch (s.kind) {
      case Step::kNfc:
      case Step::kNfd:
      case Step::kNfkc:
      case Step::kNfkd: {
        if (IsAscii(cur)) break;  // ASCII is invariant under every normalization form
        const icu::Normalizer2* norm = IcuNormalizer(s.kind - Step::kNfc);
        UErrorCode err = U_ZERO_ERROR;
        if (norm->isNormalizedUTF8(icu::StringPiece(cur.data(), static_cast<int32_t>(cur.size())), err) &&
            U_SUCCESS(err))
          break;
        err = U_ZERO_ERROR;
        next.clear();
        icu::StringByteSink<std::string> sink(&next);
        norm->normalizeUTF8(0, icu::StringPiece(cur.data(), static_cast<int32_t>(cur.size())), sink, nullptr, err);
        if (U_FAILURE(err)) return Status::Internal(std::string("ICU normalization failed: ") + u_errorName(err));
        cur.swap(next);
        break;
      }
      case Step::kPrepend:
        if (!cur.empty()) cur.insert(0, s.a);
        break;
      case Step::kReplaceString:
        cur = ReplaceAll(cur, s.a, s.b);
        break;
      case Step::kReplaceRegex: {
        std::vector<std::pair<size_t, size_t>> m;
        RETURN_IF_ERROR(s.regex->FindAll(cur, &m));
        next.clear();
        size_t pos = 0;
        for (auto [a, b] : m) {
          next.append(cur, pos, a - pos);
          next.append(s.b);
          pos = b;
        }
        next.append(cur, pos, std::string::npos);
        cur.swap(next);
        break;
      }
      case Step::kStrip: {
        size_t a = 0, b = cur.size();
        if (s.left) {
          while (a < b) {
            size_t i = a;
            if (!utf8::IsWhiteSpace(utf8::Next(cur, &i))) break;
            a = i;
          }
        }
        if (s.right) {
          while (b > a) {
            const std::string_view head(cur.data() + a, b - a);
            const uint32_t cp = utf8::Last(head);
            if (!utf8::IsWhiteSpace(cp)) break;
            b -= cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
          }
        }
        cur = cur.substr(a, b - a);
        break;
      }
    }
  }
  *out = std::move(cur);
  return Status::OK();
}

}  // namespace blockkv
