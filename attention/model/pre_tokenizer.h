// tokenizer.json's "pre_tokenizer": how normalized text is cut into pre-tokens before the BPE model
// sees them, as Hugging Face `tokenizers` cuts it. Supported: Split (a regex or a string, behaviours
// Isolated, Removed, MergedWithPrevious, MergedWithNext), ByteLevel (add_prefix_space, use_regex:
// GPT-2's pattern), Metaspace (replacement, prepend_scheme always|first|never, split), and Sequence of
// these. Anything else is NotSupported, naming it.
//
// Thread safety: immutable after Load; Run may run on many threads at once.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "attention/model/regex.h"
#include "db/status.h"

namespace blockkv {

class PreTokenizer {
 public:
  // `spec`: the "pre_tokenizer" object (null: the whole piece is one pre-token).
  static StatusOr<std::unique_ptr<PreTokenizer>> Load(const nlohmann::json& spec);

  using Emit = std::function<Status(std::string_view)>;
  // Calls emit() for each non-empty pre-token of `piece` (valid UTF-8), in order. `at_origin`: the
  // piece starts at offset 0 of the input (Metaspace's prepend_scheme "first" needs it). `raw_bytes`:
  // when the last step is ByteLevel, emit the pre-token's bytes rather than their mapped characters
  // (the BPE model's byte-level mode).
  Status Run(std::string_view piece, bool at_origin, bool raw_bytes, const Emit& emit) const;

  // True when every pre-token leaves through a final ByteLevel step.
  bool ends_in_byte_level() const { return !steps_.empty() && steps_.back().kind == Step::kByteLevel; }

 private:
  enum class Behavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext };
  struct Step {
    enum Kind { kSplit, kByteLevel, kMetaspace } kind;
    std::unique_ptr<Regex> regex;  // Split (a regex pattern, or GPT-2's for ByteLevel use_regex)
    std::string literal;           // Split with a string pattern; Metaspace: the replacement
    Behavior behavior = Behavior::kIsolated;
    bool add_prefix_space = false;  // ByteLevel
    enum Prepend { kAlways, kFirst, kNever } prepend = kAlways;  // Metaspace
    bool split = true;                                           // Metaspace
  };
  static Status AddSteps(const nlohmann::json& spec, std::vector<Step>* steps);
  Status RunFrom(size_t step, std::string_view piece, bool at_origin, bool raw_bytes,
                 const Emit& emit) const;
  Status SplitAndContinue(size_t step, std::string_view piece, bool at_origin, bool raw_bytes,
                          const std::vector<std::pair<size_t, size_t>>& matches, Behavior behavior,
                          const Emit& emit) const;
  std::vector<Step> steps_;
};

}  // namespace blockkv
