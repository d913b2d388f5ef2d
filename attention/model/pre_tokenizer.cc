#include "attention/model/pre_tokenizer.h"

#include <nlohmann/json.hpp>

#include "attention/model/bpe.h"
#include "attention/model/normalizer.h"
#include "attention/model/utf8.h"

namespace blockkv {

namespace {

// GPT-2's pattern, used by ByteLevel when use_regex is set.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace

Status PreTokenizer::AddSteps(const nlohmann::json& spec, std::vector<Step>* steps) {
  if (spec.is_null()) return Status::OK();
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    return Status::InvalidArgument("tokenizer.json: a pre_tokenizer without a \"type\"");
  const std::string type = spec["type"].get<std::string>();
  Step step;
  if (type == "Sequence") {
    if (!spec.contains("pretokenizers") || !spec["pretokenizers"].is_array())
      return Status::InvalidArgument("tokenizer.json: pre_tokenizer Sequence without a \"pretokenizers\" list");
    for (const auto& p : spec["pretokenizers"]) RETURN_IF_ERROR(AddSteps(p, steps));
    return Status::OK();
  } else if (type == "Split") {
    step.kind = Step::kSplit;
    if (!spec.contains("pattern") || !spec["pattern"].is_object())
      return Status::InvalidArgument("tokenizer.json: pre_tokenizer Split without a \"pattern\"");
    const auto& p = spec["pattern"];
    if (p.contains("Regex") && p["Regex"].is_string()) {
      ASSIGN_OR_RETURN(step.regex, Regex::Compile(p["Regex"].get<std::string>()));
    } else if (p.contains("String") && p["String"].is_string()) {
      step.literal = p["String"].get<std::string>();
      if (step.literal.empty()) return Status::InvalidArgument("tokenizer.json: Split on an empty string");
    } else {
      return Status::InvalidArgument("tokenizer.json: Split.pattern is neither {\"Regex\"} nor {\"String\"}");
    }
    const std::string behavior = spec.value("behavior", std::string("Isolated"));
    if (behavior == "Isolated") step.behavior = Behavior::kIsolated;
    else if (behavior == "Removed") step.behavior = Behavior::kRemoved;
    else if (behavior == "MergedWithPrevious") step.behavior = Behavior::kMergedWithPrevious;
    else if (behavior == "MergedWithNext") step.behavior = Behavior::kMergedWithNext;
    else return Status::NotSupported("tokenizer.json: Split behavior \"" + behavior + "\"");
    if (spec.value("invert", false)) return Status::NotSupported("tokenizer.json: Split with invert");
  } else if (type == "ByteLevel") {
    step.kind = Step::kByteLevel;
    step.add_prefix_space = spec.value("add_prefix_space", true);
    if (spec.value("use_regex", true)) {
      ASSIGN_OR_RETURN(step.regex, Regex::Compile(kGpt2Pattern));
    }
  } else if (type == "Metaspace") {
    step.kind = Step::kMetaspace;
    step.literal = spec.value("replacement", std::string("\u2581"));
    if (utf8::CountCodePoints(step.literal) != 1 || !utf8::IsValid(step.literal))
      return Status::InvalidArgument("tokenizer.json: Metaspace replacement must be one character");
    step.split = spec.value("split", true);
    const bool has_scheme = spec.contains("prepend_scheme") && spec["prepend_scheme"].is_string();
    const std::string scheme = has_scheme ? spec["prepend_scheme"].get<std::string>() : "";
    if (!has_scheme) {
      step.prepend = spec.value("add_prefix_space", true) ? Step::kAlways : Step::kNever;
    } else if (scheme == "always") {
      step.prepend = Step::kAlways;
    } else if (scheme == "first") {
      step.prepend = Step::kFirst;
    } else if (scheme == "never") {
      step.prepend = Step::kNever;
    } else {
      return Status::InvalidArgument("tokenizer.json: Metaspace prepend_scheme \"" + scheme + "\"");
    }
  } else {
    return Status::NotSupported("tokenizer.json: pre_tokenizer \"" + type + "\"");
  }
  steps->push_back(std::move(step));
  return Status::OK();
}

StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::Load(const nlohmann::json& spec) {
  auto p = std::unique_ptr<PreTokenizer>(new PreTokenizer());
  RETURN_IF_ERROR(AddSteps(spec, &p->steps_));
  for (size_t i = 0; i + 1 < p->steps_.size(); ++i)
    if (p->steps_[i].kind == Step::kByteLevel)
      return Status::NotSupported("tokenizer.json: a ByteLevel pre-tokenizer that is not the last step");
  return p;
}

Status PreTokenizer::Run(std::string_view piece, bool at_origin, bool raw_bytes, const Emit& emit) const {
  if (piece.empty()) return Status::OK();
  return RunFrom(0, piece, at_origin, raw_bytes, emit);
}

Status PreTokenizer::SplitAndContinue(size_t step, std::string_view piece, bool at_origin, bool raw_bytes,
                                      const std::vector<std::pair<size_t, size_t>>& matches,
                                      Behavior behavior, const Emit& emit) const {
  // Pieces as [start, end) ranges of `piece`, empty ones dropped.
  const auto out = [&](size_t a, size_t b) -> Status {
    if (b <= a) return Status::OK();
    return RunFrom(step + 1, piece.substr(a, b - a), at_origin && a == 0, raw_bytes, emit);
  };
  size_t pos = 0;   // end of what has been emitted
  size_t open = 0;  // start of the piece being accumulated (MergedWithNext)
  for (auto [a, b] : matches) {
    switch (behavior) {
      case Behavior::kIsolated:
        RETURN_IF_ERROR(out(pos, a));
        RETURN_IF_ERROR(out(a, b));
        pos = b;
        break;
      case Behavior::kRemoved:
        RETURN_IF_ERROR(out(pos, a));
        pos = b;
        break;
      case Behavior::kMergedWithPrevious:
        RETURN_IF_ERROR(out(pos, b));
        pos = b;
        break;
      case Behavior::kMergedWithNext:
        RETURN_IF_ERROR(out(open, a));
        open = a;
        pos = a;
        break;
    }
  }
  if (behavior == Behavior::kMergedWithNext) return out(open, piece.size());
  return out(pos, piece.size());
}

Status PreTokenizer::RunFrom(size_t i, std::string_view piece, bool at_origin, bool raw_bytes,
                             const Emit& emit) const {
  if (i == steps_.size()) return emit(piece);
  const Step& s = steps_[i];
  switch (s.kind) {
    case Step::kSplit: {
      std::vector<std::pair<size_t, size_t>> m;
      if (s.regex) {
        RETURN_IF_ERROR(s.regex->FindAll(piece, &m));
      } else {
        for (size_t p = piece.find(s.literal); p != std::string_view::npos;
             p = piece.find(s.literal, p + s.literal.size()))
          m.emplace_back(p, p + s.literal.size());
      }
      return SplitAndContinue(i, piece, at_origin, raw_bytes, m, s.behavior, emit);
    }
    case Step::kMetaspace: {
      std::string t = ReplaceAll(piece, " ", s.literal);
      const bool starts = t.compare(0, s.literal.size(), s.literal) == 0;
      if (!starts && (s.prepend == Step::kAlways || (s.prepend == Step::kFirst && at_origin)))
        t.insert(0, s.literal);
      if (!s.split) return RunFrom(i + 1, t, at_origin, raw_bytes, emit);
      std::vector<std::pair<size_t, size_t>> m;
      for (size_t p = t.find(s.literal); p != std::string::npos; p = t.find(s.literal, p + s.literal.size()))
        m.emplace_back(p, p + s.literal.size());
      return SplitAndContinue(i, t, at_origin, raw_bytes, m, Behavior::kMergedWithNext, emit);
    }
    case Step::kByteLevel: {
      std::string prefixed;
      std::string_view text = piece;
      if (s.add_prefix_space && piece[0] != ' ') {
        prefixed = " ";
        prefixed += piece;
        text = prefixed;
      }
      // The mapping to characters is the last thing that happens (ByteLevel is the last step).
      const auto finish = [&](std::string_view t) -> Status {
        if (t.empty()) return Status::OK();
        if (raw_bytes) return emit(t);
        std::string mapped;
        mapped.reserve(t.size() * 2);
        for (char c : t) utf8::Append(ByteToChar(static_cast<uint8_t>(c)), &mapped);
        return emit(mapped);
      };
      if (!s.regex) return finish(text);
      std::vector<std::pair<size_t, size_t>> m;
      RETURN_IF_ERROR(s.regex->FindAll(text, &m));
      size_t pos = 0;
      for (auto [a, b] : m) {
        RETURN_IF_ERROR(finish(text.substr(pos, a - pos)));
        RETURN_IF_ERROR(finish(text.substr(a, b - a)));
        pos = b;
      }
      return finish(text.substr(pos));
    }
  }
  return Status::Internal("pre_tokenizer: unknown step");
}

}  // namespace blockkv
