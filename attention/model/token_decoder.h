// tokenizer.json's "decoder": how token strings become text again, as Hugging Face `tokenizers`
// decodes. Supported: ByteLevel, Metaspace, Replace (a string or a regex), ByteFallback, Fuse, Strip,
// and Sequence of these; no decoder joins the tokens with spaces. Anything else is NotSupported.
//
// Thread safety: immutable after Load; Decode may run on many threads at once.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "attention/model/regex.h"
#include "db/status.h"

namespace blockkv {

class TokenDecoder {
 public:
  // `spec`: the "decoder" object (null: join with " ").
  static StatusOr<std::unique_ptr<TokenDecoder>> Load(const nlohmann::json& spec);

  // Decodes token strings (consumed) into *out.
  Status Decode(std::vector<std::string> tokens, std::string* out) const;

 private:
  struct Step {
    enum Kind { kByteLevel, kMetaspace, kReplaceString, kReplaceRegex, kByteFallback, kFuse, kStrip } kind;
    std::string a, b;  // Replace: pattern a → b; Metaspace: replacement a; Strip: content a
    std::unique_ptr<Regex> regex;
    bool prepend = true;  // Metaspace: prepend_scheme != never
    int start = 0, stop = 0;  // Strip
  };
  static Status AddSteps(const nlohmann::json& spec, std::vector<Step>* steps);
  std::vector<Step> steps_;
  bool none_ = false;  // no decoder at all
};

}  // namespace blockkv
