#include "attention/model/token_decoder.h"

#include <nlohmann/json.hpp>

#include "attention/model/bpe.h"
#include "attention/model/normalizer.h"
#include "attention/model/utf8.h"

namespace blockkv {

Status TokenDecoder::AddSteps(const nlohmann::json& spec, std::vector<Step>* steps) {
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    return Status::InvalidArgument("tokenizer.json: a decoder without a \"type\"");
  const std::string type = spec["type"].get<std::string>();
  Step step;
  if (type == "Sequence") {
    if (!spec.contains("decoders") || !spec["decoders"].is_array())
      return Status::InvalidArgument("tokenizer.json: decoder Sequence without a \"decoders\" list");
    for (const auto& d : spec["decoders"]) RETURN_IF_ERROR(AddSteps(d, steps));
    return Status::OK();
  } else if (type == "ByteLevel") {
    step.kind = Step::kByteLevel;
  } else if (type == "Metaspace") {
    step.kind = Step::kMetaspace;
    step.a = spec.value("replacement", std::string("\u2581"));
    if (spec.contains("prepend_scheme") && spec["prepend_scheme"].is_string())
      step.prepend = spec["prepend_scheme"].get<std::string>() != "never";
    else
      step.prepend = spec.value("add_prefix_space", true);
  } else if (type == "Replace") {
    bool is_regex = false;
    RETURN_IF_ERROR(ParseReplacePattern(spec, "decoder Replace", &step.a, &is_regex));
    if (!spec.contains("content") || !spec["content"].is_string())
      return Status::InvalidArgument("tokenizer.json: decoder Replace without a \"content\" string");
    step.b = spec["content"].get<std::string>();
    step.kind = is_regex ? Step::kReplaceRegex : Step::kReplaceString;
    if (is_regex) {
      ASSIGN_OR_RETURN(step.regex, Regex::Compile(step.a));
    }
  } else if (type == "ByteFallback") {
    step.kind = Step::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = Step::kFuse;
  } else if (type == "Strip") {
    step.kind = Step::kStrip;
    step.a = spec.value("content", std::string(" "));
    if (utf8::CountCodePoints(step.a) != 1 || !utf8::IsValid(step.a))
      return Status::InvalidArgument("tokenizer.json: decoder Strip content must be one character");
    if (!spec.contains("start") || !spec["start"].is_number_unsigned() || !spec.contains("stop") ||
        !spec["stop"].is_number_unsigned())
      return Status::InvalidArgument("tokenizer.json: decoder Strip needs unsigned \"start\" and \"stop\"");
    step.start = static_cast<int>(std::min<uint64_t>(spec["start"].get<uint64_t>(), 1 << 20));
    step.stop = static_cast<int>(std::min<uint64_t>(spec["stop"].get<uint64_t>(), 1 << 20));
  } else {
    return Status::NotSupported("tokenizer.json: decoder \"" + type + "\"");
  }
  steps->push_back(std::move(step));
  return Status::OK();
}

StatusOr<std::unique_ptr<TokenDecoder>> TokenDecoder::Load(const nlohmann::json& spec) {
  auto d = std::unique_ptr<TokenDecoder>(new TokenDecoder());
  if (spec.is_null()) {
    d->none_ = true;
    return d;
  }
  RETURN_IF_ERROR(AddSteps(spec, &d->steps_));
  return d;
}

namespace {

// ByteFallback: runs of "<0xXX>" tokens become the text they spell, or one U+FFFD per byte when the
// run is not valid UTF-8.
void ByteFallback(std::vector<std::string>* tokens) {
  std::vector<std::string> out;
  out.reserve(tokens->size());
  std::string run;
  size_t run_len = 0;
  const auto flush = [&] {
    if (run_len == 0) return;
    if (utf8::IsValid(run)) {
      out.push_back(run);
    } else {
      for (size_t i = 0; i < run_len; ++i) out.emplace_back("\xEF\xBF\xBD");
    }
    run.clear();
    run_len = 0;
  };
  for (std::string& t : *tokens) {
    int byte = -1;
    if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
      const auto hex = [](char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      };
      const int hi = hex(t[3]), lo = hex(t[4]);
      if (hi >= 0 && lo >= 0) byte = hi * 16 + lo;
    }
    if (byte >= 0) {
      run.push_back(static_cast<char>(byte));
      ++run_len;
    } else {
      flush();
      out.push_back(std::move(t));
    }
  }
  flush();
  tokens->swap(out);
}

// The code points of `s` (valid UTF-8).
std::vector<uint32_t> CodePoints(const std::string& s) {
  std::vector<uint32_t> cps;
  size_t i = 0;
  while (i < s.size()) cps.push_back(utf8::Next(s, &i));
  return cps;
}

}  // namespace

Status TokenDecoder::Decode(std::vector<std::string> tokens, std::string* out) const {
  out->clear();
  if (none_) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) out->push_back(' ');
      out->append(tokens[i]);
    }
    return Status::OK();
  }
  for (const Step& s : steps_) {
    switch (s.kind) {
      case Step::kByteLevel: {
        // Each token's characters map back to bytes; a token with a character outside the mapping
        // contributes its own UTF-8. Then the bytes are read as UTF-8, lossily.
        std::string bytes;
        for (const std::string& t : tokens) {
          const size_t mark = bytes.size();
          size_t i = 0;
          bool ok = true;
          while (i < t.size()) {
            const int b = CharToByte(utf8::Next(t, &i));
            if (b < 0) {
              ok = false;
              break;
            }
            bytes.push_back(static_cast<char>(b));
          }
          if (!ok) {
            bytes.resize(mark);
            bytes += t;
          }
        }
        std::string text;
        utf8::AppendLossy(bytes, &text);
        tokens.assign(1, std::move(text));
        break;
      }
      case Step::kMetaspace:
        for (size_t k = 0; k < tokens.size(); ++k) {
          std::string r;
          size_t p = 0;
          const std::string& t = tokens[k];
          while (p < t.size()) {
            if (t.compare(p, s.a.size(), s.a) == 0) {
              if (!(k == 0 && s.prepend)) r.push_back(' ');
              p += s.a.size();
            } else {
              r.push_back(t[p++]);
            }
          }
          tokens[k] = std::move(r);
        }
        break;
      case Step::kReplaceString:
        for (std::string& t : tokens) t = ReplaceAll(t, s.a, s.b);
        break;
      case Step::kReplaceRegex:
        for (std::string& t : tokens) {
          std::vector<std::pair<size_t, size_t>> m;
          RETURN_IF_ERROR(s.regex->FindAll(t, &m));
          std::string r;
          size_t pos = 0;
          for (auto [a, b] : m) {
            r.append(t, pos, a - pos);
            r.append(s.b);
            pos = b;
          }
          r.append(t, pos, std::string::npos);
          t = std::move(r);
        }
        break;
      case Step::kByteFallback:
        ByteFallback(&tokens);
        break;
      case Step::kFuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case Step::kStrip: {
        size_t ci = 0;
        const uint32_t content = utf8::Next(s.a, &ci);
        for (std::string& t : tokens) {
          const std::vector<uint32_t> cps = CodePoints(t);
          size_t a = 0, b = cps.size();
          for (int i = 0; i < s.start && a < cps.size() && cps[a] == content; ++i) ++a;
          for (int i = 0; i < s.stop && b > a && cps[b - 1] == content; ++i) --b;
          std::string r;
          for (size_t i = a; i < b; ++i) utf8::Append(cps[i], &r);
          t = std::move(r);
        }
        break;
      }
    }
  }
  for (const std::string& t : tokens) out->append(t);
  return Status::OK();
}

}  // namespace blockkv
