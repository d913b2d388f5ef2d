// UTF-8 helpers for the tokenizer: validation, code point iteration, Rust's lossy decoding, and the
// Unicode White_Space property.
//
// All functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace blockkv::utf8 {

// Length in bytes of the code point that starts with lead byte `c` (1 for bytes that cannot lead).
inline int SeqLen(uint8_t c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return 2;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return 4;
  return 1;
}

// Decodes the code point at s[i] (s must be valid UTF-8) and advances i past it.
inline uint32_t Next(std::string_view s, size_t* i) {
  const uint8_t c = static_cast<uint8_t>(s[*i]);
  const int n = SeqLen(c);
  uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[*i + k]) & 0x3F);
  *i += n;
  return cp;
}

// Decodes the code point that ends at s[end) (s valid UTF-8, end > 0).
uint32_t Last(std::string_view s);

void Append(uint32_t cp, std::string* out);

// The byte offset of the first invalid sequence, or npos when `s` is valid UTF-8 (no overlongs, no
// surrogates, nothing above U+10FFFF).
size_t FindInvalid(std::string_view s);
inline bool IsValid(std::string_view s) { return FindInvalid(s) == std::string_view::npos; }

// Appends `bytes` to *out, replacing each maximal invalid subsequence by U+FFFD, as Rust's
// String::from_utf8_lossy does (and the Unicode standard recommends).
void AppendLossy(std::string_view bytes, std::string* out);

// Unicode's White_Space property (what Rust's char::is_whitespace and regex \s match).
bool IsWhiteSpace(uint32_t cp);

// Number of code points in valid UTF-8 `s`.
size_t CountCodePoints(std::string_view s);

}  // namespace blockkv::utf8
