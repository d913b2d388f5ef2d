// A compiled PCRE2 regular expression (UTF, UCP, JIT) for the tokenizer's pre-tokenizer and
// normalizer patterns. Hugging Face `tokenizers` runs these patterns on Oniguruma; the Llama 3 and Qwen
// patterns mean the same in PCRE2 and compile unchanged, except that PCRE2's \s also matches U+180E, which
// Oniguruma's does not: Compile rewrites \s and \S as Unicode's White_Space (TranslatePattern).
//
// Thread safety: a Regex is immutable after Compile; FindAll may run on many threads at once (each
// thread has its own match data and JIT stack).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "db/status.h"

namespace blockkv {

class Regex {
 public:
  // InvalidArgument naming the pattern and PCRE2's message if it does not compile.
  static StatusOr<std::unique_ptr<Regex>> Compile(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [start, end) byte ranges of every non-overlapping match in `text` (valid UTF-8),
  // leftmost first, to *matches. An empty match advances by one character. Errors: Internal when PCRE2
  // gives up (e.g. its match limit), naming the pattern.
  Status FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  void* code_ = nullptr;  // pcre2_code*
  bool jit_ = false;
  std::string pattern_;
};

// The pattern PCRE2 is given for a `tokenizers` (Oniguruma) pattern: \s and \S become Unicode's
// White_Space set and its complement (inside a character class, \s becomes the set's members);
// everything else is unchanged.
std::string TranslatePattern(const std::string& pattern);

}  // namespace blockkv
