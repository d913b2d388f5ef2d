// The chat template lexer: Jinja2's lexer (jinja2/lexer.py, 3.1) for the environment transformers
// builds, trim_blocks=True and lstrip_blocks=True, with the default delimiters.
//
// Whitespace control is where templates and interpreters most often disagree, so this follows
// lexer.py's regular expressions step by step rather than a description of them:
//  - the source's newlines (\r\n, \r, \n) become \n and one trailing newline is dropped
//    (keep_trailing_newline=False);
//  - text before a tag: "{%-", "{{-", "{#-" strip all whitespace before it (str.rstrip, so
//    Unicode whitespace too); otherwise, unless the tag is "{{" or opens with "+",
//    lstrip_blocks removes the whitespace between the start of the line and "{%" / "{#", when
//    only whitespace is there. "The start of the line" includes the very start of the template
//    and the point just after a tag that ended with a newline;
//  - after a tag: "-%}", "-}}", "-#}" strip all whitespace after it; "%}" and "#}" (not "}}")
//    eat one newline (trim_blocks) unless written "+%}" / "+#}";
//  - "{% raw %}" ... "{% endraw %}": the raw opener does not trim the newline after it; the
//    closer does;
//  - inside tags, "%}" and "}}" end the tag only when brackets are balanced.
#include <cstdlib>
#include <cstring>

#include "attention/model/chat_template_internal.h"

namespace blockkv::jinja {

namespace {

bool StartsWith(std::string_view s, size_t pos, std::string_view p) {
  return pos <= s.size() && s.size() - pos >= p.size() && s.compare(pos, p.size(), p) == 0;
}

// Python's \s at s[pos]: the byte length of the whitespace code point there, or 0.
size_t SpaceAt(std::string_view s, size_t pos) {
  if (pos >= s.size()) return 0;
  size_t i = pos;
  const uint32_t cp = text::Next(s, &i);
  return text::IsSpace(cp) ? i - pos : 0;
}

size_t SkipSpace(std::string_view s, size_t pos) {
  while (size_t n = SpaceAt(s, pos)) pos += n;
  return pos;
}

// Length of `s` once trailing whitespace is stripped (str.rstrip()).
size_t RStripLength(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
    size_t i = start;
    if (!text::IsSpace(text::Next(s, &i))) break;
    end = start;
  }
  return end;
}

bool AllSpace(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (!text::IsSpace(text::Next(s, &i))) return false;
  }
  return true;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || IsDigit(c); }

// (\d+_)*\d+ at pos: the end of the longest match, or npos.
size_t MatchDigits(std::string_view s, size_t pos, bool (*digit)(char) = IsDigit) {
  if (pos >= s.size() || !digit(s[pos])) return std::string_view::npos;
  size_t i = pos;
  while (i < s.size() && digit(s[i])) ++i;
  while (i + 1 < s.size() && s[i] == '_' && digit(s[i + 1])) {
    ++i;
    while (i < s.size() && digit(s[i])) ++i;
  }
  return i;
}

// lexer.py's float_re at pos (not preceded by '.'): end or npos.
size_t MatchFloat(std::string_view s, size_t pos) {
  constexpr size_t npos = std::string_view::npos;
  if (pos > 0 && s[pos - 1] == '.') return npos;
  const size_t mant = MatchDigits(s, pos);
  if (mant == npos) return npos;
  auto exponent = [&](size_t i) -> size_t {
    if (i >= s.size() || (s[i] != 'e' && s[i] != 'E')) return npos;
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    return MatchDigits(s, i);
  };
  size_t frac = npos;
  if (mant < s.size() && s[mant] == '.') frac = MatchDigits(s, mant + 1);
  if (frac != npos) {
    if (size_t e = exponent(frac); e != npos) return e;
  }
  if (size_t e = exponent(mant); e != npos) return e;
  return frac;
}

bool IsBin(char c) { return c == '0' || c == '1'; }
bool IsOct(char c) { return c >= '0' && c <= '7'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// (_?[digit])+ at pos: end or npos.
size_t MatchPrefixedDigits(std::string_view s, size_t pos, bool (*digit)(char)) {
  size_t i = pos;
  for (;;) {
    size_t j = i;
    if (j < s.size() && s[j] == '_') ++j;
    if (j < s.size() && digit(s[j])) {
      i = j + 1;
    } else {
      break;
    }
  }
  return i == pos ? std::string_view::npos : i;
}

// lexer.py's integer_re at pos: end or npos; *base is 2, 8, 10 or 16.
size_t MatchInteger(std::string_view s, size_t pos, int* base) {
  constexpr size_t npos = std::string_view::npos;
  if (pos >= s.size() || !IsDigit(s[pos])) return npos;
  if (s[pos] == '0' && pos + 1 < s.size()) {
    const char p = static_cast<char>(s[pos + 1] | 0x20);
    bool (*digit)(char) = p == 'b' ? IsBin : p == 'o' ? IsOct : p == 'x' ? IsHex : nullptr;
    if (digit != nullptr) {
      if (size_t e = MatchPrefixedDigits(s, pos + 2, digit); e != npos) {
        *base = p == 'b' ? 2 : p == 'o' ? 8 : 16;
        return e;
      }
    }
  }
  *base = 10;
  if (s[pos] != '0') return MatchDigits(s, pos);
  // 0(_?0)*
  size_t i = pos + 1;
  for (;;) {
    size_t j = i;
    if (j < s.size() && s[j] == '_') ++j;
    if (j < s.size() && s[j] == '0') {
      i = j + 1;
    } else {
      break;
    }
  }
  return i;
}

const char* const kOperators[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/",
                                  "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                  ">",  "<",  "=",  ".",  ":",  "|",  ",", ";"};

// Python's backslashreplace encoding to ASCII followed by the unicode-escape codec, which is how
// lexer.py decodes a string literal. Doing both steps literally keeps its quirks (a backslash
// before a non-ASCII character stays a backslash followed by "xNN").
bool DecodeStringLiteral(std::string_view body, std::string* out, std::string* error) {
  std::string ascii;
  ascii.reserve(body.size());
  for (size_t i = 0; i < body.size();) {
    const uint32_t cp = text::Next(body, &i);
    if (cp < 0x80) {
      ascii.push_back(static_cast<char>(cp));
    } else {
      char buf[16];
      if (cp < 0x100) {
        snprintf(buf, sizeof buf, "\\x%02x", cp);
      } else if (cp < 0x10000) {
        snprintf(buf, sizeof buf, "\\u%04x", cp);
      } else {
        snprintf(buf, sizeof buf, "\\U%08x", cp);
      }
      ascii += buf;
    }
  }
  out->clear();
  auto hex = [&](size_t at, int n, uint32_t* v) {
    if (at + n > ascii.size()) return false;
    *v = 0;
    for (int k = 0; k < n; ++k) {
      const char c = ascii[at + k];
      if (!IsHex(c)) return false;
      *v = *v * 16 + static_cast<uint32_t>(IsDigit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return true;
  };
  for (size_t i = 0; i < ascii.size();) {
    const char c = ascii[i];
    if (c != '\\') {
      out->push_back(c);
      ++i;
      continue;
    }
    if (i + 1 >= ascii.size()) {
      *error = "\\ at end of string";
      return false;
    }
    const char e = ascii[i + 1];
    i += 2;
    uint32_t cp = 0;
    switch (e) {
      case '\n':
        continue;
      case '\\':
        out->push_back('\\');
        continue;
      case '\'':
        out->push_back('\'');
        continue;
      case '"':
        out->push_back('"');
        continue;
      case 'b':
        out->push_back('\b');
        continue;
      case 'f':
        out->push_back('\f');
        continue;
      case 't':
        out->push_back('\t');
        continue;
      case 'n':
        out->push_back('\n');
        continue;
      case 'r':
        out->push_back('\r');
        continue;
      case 'v':
        out->push_back('\v');
        continue;
      case 'a':
        out->push_back('\a');
        continue;
      case 'x':
      case 'u':
      case 'U': {
        const int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        if (!hex(i, n, &cp)) {
          *error = e == 'x'   ? "truncated \\xXX escape"
                   : e == 'u' ? "truncated \\uXXXX escape"
                              : "truncated \\UXXXXXXXX escape";
          return false;
        }
        i += n;
        if (cp > 0x10FFFF) {
          *error = "illegal Unicode character";
          return false;
        }
        break;
      }
      case 'N':
        *error = "unsupported \\N{...} escape in a string literal";
        return false;
      default:
        if (IsOct(e)) {
          cp = static_cast<uint32_t>(e - '0');
          for (int k = 0; k < 2 && i < ascii.size() && IsOct(ascii[i]); ++k, ++i)
            cp = cp * 8 + static_cast<uint32_t>(ascii[i] - '0');
          break;
        }
        out->push_back('\\');
        out->push_back(e);
        continue;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) {
      *error = "unsupported: a surrogate escape in a string literal";
      return false;
    }
    text::Append(cp, out);
  }
  return true;
}

class Lexer {
 public:
  Lexer(std::string_view src, LexResult* result, SourceError* error)
      : s_(src), result_(result), error_(error) {}

  bool Run() {
    size_t pos = 0;
    while (pos < s_.size()) {
      size_t tag = pos;
      for (;;) {
        tag = s_.find('{', tag);
        if (tag == std::string_view::npos || tag + 1 >= s_.size()) {
          tag = std::string_view::npos;
          break;
        }
        const char k = s_[tag + 1];
        if (k == '{' || k == '%' || k == '#') break;
        ++tag;
      }
      if (tag == std::string_view::npos) {
        Emit(Tok::kData, pos, std::string(s_.substr(pos)));
        break;
      }
      const char kind = s_[tag + 1];
      size_t raw_end = 0;
      char sign = 0;
      const bool raw = kind == '%' && MatchRawBegin(tag, &raw_end, &sign);
      size_t after = tag + 2;
      if (!raw && after < s_.size() && (s_[after] == '-' || s_[after] == '+')) sign = s_[after++];
      EmitText(pos, s_.substr(pos, tag - pos), sign, /*lstrip_allowed=*/kind != '{');
      if (raw) {
        line_starting_ = s_[raw_end - 1] == '\n';
        if (!LexRawBody(raw_end, &pos)) return false;
      } else if (kind == '#') {
        if (!LexComment(after, &pos)) return false;
      } else {
        Emit(kind == '{' ? Tok::kVariableBegin : Tok::kBlockBegin, tag, "");
        if (!LexTag(after, kind == '%', &pos)) return false;
      }
    }
    Emit(Tok::kEof, s_.size(), "");
    return true;
  }

 private:
  void Emit(Tok type, size_t offset, std::string text) {
    Token t;
    t.type = type;
    t.offset = offset;
    t.text = std::move(text);
    result_->tokens.push_back(std::move(t));
  }

  bool Fail(size_t offset, std::string message) {
    error_->offset = offset;
    error_->message = std::move(message);
    return false;
  }

  // Text before a tag, with "-" stripping or lstrip_blocks applied.
  void EmitText(size_t offset, std::string_view text, char sign, bool lstrip_allowed) {
    if (sign == '-') {
      text = text.substr(0, RStripLength(text));
    } else if (sign != '+' && lstrip_allowed) {
      const size_t nl = text.rfind('\n');
      const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting_) && l_pos < text.size() && AllSpace(text.substr(l_pos)))
        text = text.substr(0, l_pos);
    }
    if (!text.empty()) Emit(Tok::kData, offset, std::string(text));
    line_starting_ = false;
  }

  // {%(-|+|)\s*raw\s*(?:-%}\s*|%})
  bool MatchRawBegin(size_t tag, size_t* end, char* sign) {
    size_t i = tag + 2;
    *sign = 0;
    if (i < s_.size() && (s_[i] == '-' || s_[i] == '+')) *sign = s_[i++];
    i = SkipSpace(s_, i);
    if (!StartsWith(s_, i, "raw")) return false;
    i = SkipSpace(s_, i + 3);
    if (StartsWith(s_, i, "-%}")) {
      *end = SkipSpace(s_, i + 3);
      return true;
    }
    if (StartsWith(s_, i, "%}")) {
      *end = i + 2;
      return true;
    }
    return false;
  }

  // (.*?)((?:{%(-|+|))\s*endraw\s*(?:\+%}|\-%}\s*|%}\n?))
  bool LexRawBody(size_t pos, size_t* next) {
    // As in lexer.py, a raw block or comment opened at the very end of the source just ends the
    // tokens; only a character left unmatched is an error.
    if (pos >= s_.size()) {
      *next = pos;
      return true;
    }
    for (size_t j = s_.find("{%", pos); j != std::string_view::npos; j = s_.find("{%", j + 1)) {
      size_t i = j + 2;
      char sign = 0;
      if (i < s_.size() && (s_[i] == '-' || s_[i] == '+')) sign = s_[i++];
      i = SkipSpace(s_, i);
      if (!StartsWith(s_, i, "endraw")) continue;
      i = SkipSpace(s_, i + 6);
      size_t end;
      if (StartsWith(s_, i, "+%}")) {
        end = i + 3;
      } else if (StartsWith(s_, i, "-%}")) {
        end = SkipSpace(s_, i + 3);
      } else if (StartsWith(s_, i, "%}")) {
        end = i + 2;
        if (end < s_.size() && s_[end] == '\n') ++end;
      } else {
        continue;
      }
      EmitText(pos, s_.substr(pos, j - pos), sign, /*lstrip_allowed=*/true);
      line_starting_ = s_[end - 1] == '\n';
      *next = end;
      return true;
    }
    return Fail(pos, "Missing end of raw directive");
  }

  // (.*?)((?:\+#}|\-#}\s*|#}\n?))
  bool LexComment(size_t pos, size_t* next) {
    if (pos >= s_.size()) {
      *next = pos;
      return true;
    }
    for (size_t j = pos; j < s_.size(); ++j) {
      size_t end = 0;
      if (StartsWith(s_, j, "+#}")) {
        end = j + 3;
      } else if (StartsWith(s_, j, "-#}")) {
        end = SkipSpace(s_, j + 3);
      } else if (StartsWith(s_, j, "#}")) {
        end = j + 2;
        if (end < s_.size() && s_[end] == '\n') ++end;
      } else {
        continue;
      }
      line_starting_ = s_[end - 1] == '\n';
      *next = end;
      return true;
    }
    return Fail(pos, "Missing end of comment tag");
  }

  // Tokens inside {% %} or {{ }}, up to and including the end tag.
  bool LexTag(size_t pos, bool block, size_t* next) {
    std::vector<char> balance;
    while (pos < s_.size()) {
      if (balance.empty()) {
        size_t end = 0;
        if (block) {
          if (StartsWith(s_, pos, "+%}")) {
            end = pos + 3;
          } else if (StartsWith(s_, pos, "-%}")) {
            end = SkipSpace(s_, pos + 3);
          } else if (StartsWith(s_, pos, "%}")) {
            end = pos + 2;
            if (end < s_.size() && s_[end] == '\n') ++end;
          }
        } else {
          if (StartsWith(s_, pos, "-}}")) {
            end = SkipSpace(s_, pos + 3);
          } else if (StartsWith(s_, pos, "}}")) {
            end = pos + 2;
          }
        }
        if (end != 0) {
          Emit(block ? Tok::kBlockEnd : Tok::kVariableEnd, pos, "");
          line_starting_ = s_[end - 1] == '\n';
          *next = end;
          return true;
        }
      }
      if (size_t n = SpaceAt(s_, pos)) {
        pos = SkipSpace(s_, pos + n);
        continue;
      }
      if (size_t e = MatchFloat(s_, pos); e != std::string_view::npos) {
        std::string digits;
        for (size_t k = pos; k < e; ++k)
          if (s_[k] != '_') digits.push_back(s_[k]);
        Emit(Tok::kFloat, pos, std::string(s_.substr(pos, e - pos)));
        result_->tokens.back().number = std::strtod(digits.c_str(), nullptr);
        pos = e;
        continue;
      }
      int base = 10;
      if (size_t e = MatchInteger(s_, pos, &base); e != std::string_view::npos) {
        uint64_t v = 0;
        for (size_t k = pos + (base == 10 ? 0 : 2); k < e; ++k) {
          const char c = s_[k];
          if (c == '_') continue;
          const uint64_t d = IsDigit(c) ? static_cast<uint64_t>(c - '0')
                                        : static_cast<uint64_t>((c | 0x20) - 'a' + 10);
          if (v > (static_cast<uint64_t>(INT64_MAX) - d) / static_cast<uint64_t>(base))
            return Fail(pos, "unsupported: integer literal beyond 64 bits");
          v = v * static_cast<uint64_t>(base) + d;
        }
        Emit(Tok::kInteger, pos, std::string(s_.substr(pos, e - pos)));
        result_->tokens.back().integer = static_cast<int64_t>(v);
        pos = e;
        continue;
      }
      if (IsNameStart(s_[pos])) {
        size_t e = pos;
        while (e < s_.size() && IsNameChar(s_[e])) ++e;
        Emit(Tok::kName, pos, std::string(s_.substr(pos, e - pos)));
        pos = e;
        continue;
      }
      if (s_[pos] == '\'' || s_[pos] == '"') {
        const char q = s_[pos];
        size_t i = pos + 1;
        bool closed = false;
        while (i < s_.size()) {
          if (s_[i] == '\\') {
            if (++i >= s_.size()) break;
            text::Next(s_, &i);  // the escaped code point, whatever it is
            continue;
          }
          if (s_[i] == q) {
            closed = true;
            break;
          }
          ++i;
        }
        if (closed) {
          std::string value, err;
          if (!DecodeStringLiteral(s_.substr(pos + 1, i - pos - 1), &value, &err))
            return Fail(pos, err);
          Emit(Tok::kString, pos, std::move(value));
          pos = i + 1;
          continue;
        }
        // No closing quote: as in Jinja, the quote is then an unexpected character.
      }
      const char* op = nullptr;
      for (const char* o : kOperators) {
        if (StartsWith(s_, pos, o)) {
          op = o;
          break;
        }
      }
      if (op == nullptr) {
        if (static_cast<uint8_t>(s_[pos]) >= 0x80)
          return Fail(pos, "unsupported: non-ASCII character outside a string literal");
        return Fail(pos, s_[pos] == '\'' ? std::string("unexpected char \"'\"")
                                         : std::string("unexpected char '") + s_[pos] + "'");
      }
      const char c = op[0];
      if (op[1] == '\0' && (c == '{' || c == '(' || c == '[')) {
        balance.push_back(c == '{' ? '}' : c == '(' ? ')' : ']');
      } else if (op[1] == '\0' && (c == '}' || c == ')' || c == ']')) {
        if (balance.empty()) return Fail(pos, std::string("unexpected '") + c + "'");
        const char expected = balance.back();
        balance.pop_back();
        if (expected != c)
          return Fail(pos, std::string("unexpected '") + c + "', expected '" + expected + "'");
      }
      Emit(Tok::kOperator, pos, op);
      pos += std::strlen(op);
    }
    // The template ended inside a tag: the parser reports what it expected.
    *next = pos;
    return true;
  }

  std::string_view s_;
  LexResult* result_;
  SourceError* error_;
  bool line_starting_ = true;
};

}  // namespace

std::string NormalizeNewlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

SourcePos PositionOf(std::string_view source, size_t offset) {
  SourcePos p;
  offset = std::min(offset, source.size());
  size_t line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (source[i] == '\n') {
      ++p.line;
      line_start = i + 1;
    }
  }
  p.column =
      static_cast<int>(text::CountCodePoints(source.substr(line_start, offset - line_start))) + 1;
  return p;
}

std::string LocatedMessage(const SourcePos& pos, const std::string& message) {
  return "chat template line " + std::to_string(pos.line) + ", column " +
         std::to_string(pos.column) + ": " + message;
}

bool Lex(std::string_view source, LexResult* result, SourceError* error) {
  result->source = NormalizeNewlines(source);
  result->tokens.clear();
  if (size_t bad = text::FindInvalid(result->source); bad != std::string::npos) {
    error->offset = bad;
    error->message = "the template is not valid UTF-8";
    return false;
  }
  Lexer lexer(result->source, result, error);
  return lexer.Run();
}

}  // namespace blockkv::jinja
