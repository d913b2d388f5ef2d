// tokenizer.json's "normalizer": the text transformations applied before pre-tokenization, as
// Hugging Face `tokenizers` applies them. Supported: NFC, NFD, NFKC, NFKD (ICU), Prepend, Replace
// (a string or a regex), Strip, and Sequence of these. Anything else is NotSupported, naming it.
//
// Thread safety: immutable after Load; Apply may run on many threads at once.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "attention/model/regex.h"
#include "db/status.h"

namespace blockkv {

class Normalizer {
 public:
  // `spec`: the "normalizer" object (null: the identity).
  static StatusOr<std::unique_ptr<Normalizer>> Load(const nlohmann::json& spec);

  // Normalizes `text` (valid UTF-8) into *out.
  Status Apply(std::string_view text, std::string* out) const;
  bool identity() const { return steps_.empty(); }

 private:
  struct Step {
    enum Kind { kNfc, kNfd, kNfkc, kNfkd, kPrepend, kReplaceString, kReplaceRegex, kStrip } kind;
    std::string a, b;  // Prepend: a; Replace: pattern a → content b
    std::unique_ptr<Regex> regex;
    bool left = false, right = false;  // Strip
  };
  static Status AddSteps(const nlohmann::json& spec, std::vector<Step>* steps);
  std::vector<Step> steps_;
};

// Reads a Replace step's "pattern": {"String": "..."} (*is_regex false) or {"Regex": "..."}.
Status ParseReplacePattern(const nlohmann::json& spec, const std::string& where, std::string* pattern,
                           bool* is_regex);

// Replaces every non-overlapping occurrence of `from` in `text` by `to` (leftmost first).
std::string ReplaceAll(std::string_view text, std::string_view from, std::string_view to);

}  // namespace blockkv
