// Python's str operations for the chat template interpreter: strip, split, splitlines, replace,
// padding, str.format and printf-style `%` formatting, all on code points as Python's str works.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "attention/model/chat_template_internal.h"

namespace blockkv::jinja {

std::string StripChars(const std::string& s, const std::string* chars, bool left, bool right) {
  std::vector<uint32_t> cps = text::Decode(s);
  std::vector<uint32_t> set;
  if (chars != nullptr) set = text::Decode(*chars);
  auto strip = [&](uint32_t c) {
    return chars == nullptr ? text::IsSpace(c) : std::find(set.begin(), set.end(), c) != set.end();
  };
  size_t b = 0, e = cps.size();
  if (left) {
    while (b < e && strip(cps[b])) ++b;
  }
  if (right) {
    while (e > b && strip(cps[e - 1])) --e;
  }
  return text::Encode(cps, b, e);
}

std::vector<std::string> SplitLines(const std::string& s, bool keepends) {
  const std::vector<uint32_t> cps = text::Decode(s);
  std::vector<std::string> out;
  size_t start = 0, i = 0;
  auto is_break = [](uint32_t c) {
    return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D ||
           c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
  };
  while (i < cps.size()) {
    if (!is_break(cps[i])) {
      ++i;
      continue;
    }
    size_t eol = i;
    i += (cps[i] == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ? 2 : 1;
    out.push_back(text::Encode(cps, start, keepends ? i : eol));
    start = i;
  }
  if (start < cps.size()) out.push_back(text::Encode(cps, start, cps.size()));
  return out;
}

std::string Replace(const std::string& s, const std::string& old, const std::string& with,
                    int64_t count) {
  if (count < 0) count = INT64_MAX;
  std::string out;
  if (old.empty()) {
    // Python inserts `with` before every code point and at the end.
    size_t i = 0;
    int64_t n = 0;
    while (i <= s.size()) {
      if (n < count) {
        out += with;
        ++n;
      }
      if (i == s.size()) break;
      const size_t start = i;
      text::Next(s, &i);
      out.append(s, start, i - start);
    }
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  while (n < count) {
    const size_t at = s.find(old, pos);
    if (at == std::string::npos) break;
    out.append(s, pos, at - pos);
    out += with;
    pos = at + old.size();
    ++n;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

Status ExpectStr(const char* what, const Value& v) {
  if (!v.is_string()) return TypeError(std::string(what) + " must be str, not " + TypeName(v));
  return Status::OK();
}

// Code point range [start, end) of a str method's optional start/end arguments, as byte offsets.
Status ByteRange(const std::string& s, const std::optional<Value>& start,
                 const std::optional<Value>& end, size_t* b, size_t* e, int64_t* cp_begin) {
  const int64_t n = static_cast<int64_t>(text::CountCodePoints(s));
  auto index = [&](const std::optional<Value>& v, int64_t dflt, int64_t* out) -> Status {
    if (!v || v->is_none()) {
      *out = dflt;
      return Status::OK();
    }
    if (!v->is_integral())
      return TypeError("slice indices must be integers or None or have an __index__ method");
    int64_t i = v->integer();
    if (i < 0) i = std::max<int64_t>(0, i + n);
    *out = std::min(i, n);
    return Status::OK();
  };
  int64_t s0 = 0, e0 = 0;
  RETURN_IF_ERROR(index(start, 0, &s0));
  RETURN_IF_ERROR(index(end, n, &e0));
  *cp_begin = s0;
  if (e0 < s0) {
    *b = *e = std::string::npos;
    return Status::OK();
  }
  *b = text::OffsetOfCodePoint(s, static_cast<size_t>(s0));
  *e = *b + text::OffsetOfCodePoint(std::string_view(s).substr(*b), static_cast<size_t>(e0 - s0));
  return Status::OK();
}

StatusOr<Value> Split(Evaluator& ev, const std::string& s, const std::optional<Value>& sep_v,
                      const std::optional<Value>& max_v, bool from_right) {
  int64_t maxsplit = -1;
  if (max_v) {
    if (!max_v->is_integral())
      return TypeError("'" + std::string(TypeName(*max_v)) +
                       "' object cannot be interpreted as an integer");
    maxsplit = max_v->integer();
  }
  if (maxsplit < 0) maxsplit = INT64_MAX;
  std::vector<std::string> parts;
  if (!sep_v || sep_v->is_none()) {
    const std::vector<uint32_t> cps = text::Decode(s);
    const size_t n = cps.size();
    if (!from_right) {
      size_t i = 0;
      for (int64_t count = 0; count < maxsplit; ++count) {
        while (i < n && text::IsSpace(cps[i])) ++i;
        if (i == n) break;
        const size_t j = i;
        while (i < n && !text::IsSpace(cps[i])) ++i;
        parts.push_back(text::Encode(cps, j, i));
      }
      if (i < n) {
        while (i < n && text::IsSpace(cps[i])) ++i;
        if (i != n) parts.push_back(text::Encode(cps, i, n));
      }
    } else {
      size_t i = n;
      for (int64_t count = 0; count < maxsplit; ++count) {
        while (i > 0 && text::IsSpace(cps[i - 1])) --i;
        if (i == 0) break;
        const size_t j = i;
        while (i > 0 && !text::IsSpace(cps[i - 1])) --i;
        parts.push_back(text::Encode(cps, i, j));
      }
      if (i > 0) {
        while (i > 0 && text::IsSpace(cps[i - 1])) --i;
        if (i != 0) parts.push_back(text::Encode(cps, 0, i));
      }
      std::reverse(parts.begin(), parts.end());
    }
  } else {
    RETURN_IF_ERROR(ExpectStr("separator", *sep_v));
    const std::string& sep = sep_v->str();
    if (sep.empty()) return ValueError("empty separator");
    if (!from_right) {
      size_t pos = 0;
      for (int64_t count = 0; count < maxsplit; ++count) {
        const size_t at = s.find(sep, pos);
        if (at == std::string::npos) break;
        parts.push_back(s.substr(pos, at - pos));
        pos = at + sep.size();
      }
      parts.push_back(s.substr(pos));
    } else {
      size_t end = s.size();
      for (int64_t count = 0; count < maxsplit && end >= sep.size(); ++count) {
        const size_t at = s.rfind(sep, end - sep.size());
        if (at == std::string::npos) break;
        parts.push_back(s.substr(at + sep.size(), end - at - sep.size()));
        end = at;
      }
      parts.push_back(s.substr(0, end));
      std::reverse(parts.begin(), parts.end());
    }
  }
  RETURN_IF_ERROR(ev.CheckList(parts.size()));
  std::vector<Value> items;
  items.reserve(parts.size());
  for (auto& p : parts) items.push_back(Value::String(std::move(p)));
  return Value::List(std::move(items));
}

StatusOr<Value> Pad(Evaluator& ev, const std::string& s, const std::optional<Value>& width_v,
                    const std::optional<Value>& fill_v, char how) {
  if (!width_v->is_integral())
    return TypeError("'" + std::string(TypeName(*width_v)) +
                     "' object cannot be interpreted as an integer");
  uint32_t fill = ' ';
  if (fill_v) {
    if (!fill_v->is_string() || text::CountCodePoints(fill_v->str()) != 1)
      return TypeError("The fill character must be exactly one character long");
    size_t i = 0;
    fill = text::Next(fill_v->str(), &i);
  }
  const int64_t n = static_cast<int64_t>(text::CountCodePoints(s));
  const int64_t width = width_v->integer();
  if (width <= n) return Value::String(s);
  RETURN_IF_ERROR(ev.CheckString(static_cast<size_t>(width) * 4));
  const int64_t marg = width - n;
  int64_t left = 0;
  if (how == 'c') {
    left = marg / 2 + (marg & width & 1);
  } else if (how == 'r') {
    left = marg;
  }
  std::string out;
  for (int64_t i = 0; i < left; ++i) text::Append(fill, &out);
  out += s;
  for (int64_t i = 0; i < marg - left; ++i) text::Append(fill, &out);
  return Value::String(std::move(out));
}

// str.format with automatic or explicit field numbers and names; conversions !s and !r. Format
// specs and attribute or index access in fields are refused.
StatusOr<Value> StrFormat(Evaluator& ev, const std::string& f, const CallArgs& a) {
  std::string out;
  size_t auto_index = 0;
  bool used_auto = false, used_manual = false;
  for (size_t i = 0; i < f.size(); ++i) {
    const char c = f[i];
    if (c == '}') {
      if (i + 1 < f.size() && f[i + 1] == '}') {
        out.push_back('}');
        ++i;
        continue;
      }
      return ValueError("Single '}' encountered in format string");
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (i + 1 < f.size() && f[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    const size_t close = f.find('}', i);
    if (close == std::string::npos) return ValueError("expected '}' before end of string");
    std::string field = f.substr(i + 1, close - i - 1);
    i = close;
    char conversion = 0;
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      if (bang + 2 != field.size() || (field[bang + 1] != 's' && field[bang + 1] != 'r'))
        return Unsupported("str.format conversion other than !s and !r");
      conversion = field[bang + 1];
      field.resize(bang);
    }
    if (field.find_first_of(":.[{") != std::string::npos)
      return Unsupported("str.format field '" + field + "' (format specs, attributes and indexes)");
    const Value* v = nullptr;
    if (field.empty() ||
        std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      size_t index;
      if (field.empty()) {
        if (used_manual)
          return ValueError(
              "cannot switch from manual field specification to automatic field numbering");
        used_auto = true;
        index = auto_index++;
      } else {
        if (used_auto)
          return ValueError(
              "cannot switch from automatic field numbering to manual field specification");
        used_manual = true;
        index = static_cast<size_t>(std::stoull(field.substr(0, 9)));
      }
      if (index >= a.args.size())
        return Status::InvalidArgument("IndexError: Replacement index " + std::to_string(index) +
                                       " out of range for positional args tuple");
      v = &a.args[index];
    } else {
      for (const auto& kv : a.kwargs) {
        if (kv.first == field) v = &kv.second;
      }
      if (v == nullptr) return Status::InvalidArgument("KeyError: '" + field + "'");
    }
    RETURN_IF_ERROR(conversion == 'r' ? AppendRepr(*v, &out) : AppendStr(*v, &out));
    RETURN_IF_ERROR(ev.CheckString(out.size()));
  }
  return Value::String(std::move(out));
}

bool AllCps(const std::string& s, bool (*pred)(uint32_t)) {
  if (s.empty()) return false;
  size_t i = 0;
  while (i < s.size()) {
    if (!pred(text::Next(s, &i))) return false;
  }
  return true;
}

namespace {

// Python treats any argument with __getitem__ other than a tuple or str as a mapping for %(key)s.
bool MappingLike(const Value& v) {
  if (v.is_undefined() || v.is_dict()) return true;
  return v.is_seq() && (v.seq_kind() == SeqKind::kList || v.seq_kind() == SeqKind::kRange);
}

void PadTo(std::string* body, int64_t width, bool left_align, char fill, size_t insert_at) {
  const int64_t len = static_cast<int64_t>(text::CountCodePoints(*body));
  if (width <= len) return;
  const std::string pad(static_cast<size_t>(width - len), fill);
  if (left_align) {
    *body += pad;
  } else {
    body->insert(insert_at, pad);
  }
}

}  // namespace

StatusOr<Value> PercentFormat(Evaluator& ev, const std::string& f, const Value& args) {
  const bool tuple = args.is_seq() && args.seq_kind() == SeqKind::kTuple;
  const Value* mapping = MappingLike(args) ? &args : nullptr;
  int64_t arglen = tuple ? static_cast<int64_t>(args.seq().items.size()) : -1;
  int64_t argidx = tuple ? 0 : -2;
  auto next_arg = [&]() -> StatusOr<Value> {
    if (argidx < arglen) {
      ++argidx;
      if (arglen < 0) return args;
      return args.seq().items[static_cast<size_t>(argidx - 1)];
    }
    return TypeError("not enough arguments for format string");
  };
  std::string out;
  size_t i = 0;
  const size_t n = f.size();
  while (i < n) {
    if (f[i] != '%') {
      out.push_back(f[i++]);
      continue;
    }
    const size_t spec_start = i;
    if (++i >= n) return ValueError("incomplete format");
    Value arg;
    bool have_arg = false;
    if (f[i] == '(') {
      if (mapping == nullptr) return TypeError("format requires a mapping");
      int depth = 1;
      const size_t key_start = ++i;
      while (i < n && depth > 0) {
        if (f[i] == '(') ++depth;
        if (f[i] == ')') --depth;
        ++i;
      }
      if (depth > 0) return ValueError("incomplete format key");
      const Value key = Value::String(f.substr(key_start, i - 1 - key_start));
      if (mapping->is_undefined()) return UndefinedError(*mapping);
      if (!mapping->is_dict())
        return TypeError(std::string(TypeName(*mapping)) +
                         " indices must be integers or slices, not str");
      const ptrdiff_t at = mapping->dict().Find(key);
      if (at < 0) return Status::InvalidArgument("KeyError: '" + key.str() + "'");
      arg = mapping->dict().items[static_cast<size_t>(at)].second;
      have_arg = true;
      arglen = -1;
      argidx = -2;
    }
    bool left = false, plus = false, space = false, alt = false, zero = false;
    for (; i < n; ++i) {
      const char c = f[i];
      if (c == '-') {
        left = true;
      } else if (c == '+') {
        plus = true;
      } else if (c == ' ') {
        space = true;
      } else if (c == '#') {
        alt = true;
      } else if (c == '0') {
        zero = true;
      } else {
        break;
      }
    }
    int64_t width = -1, prec = -1;
    auto number = [&](int64_t* out_value) -> Status {
      if (i < n && f[i] == '*') {
        ++i;
        ASSIGN_OR_RETURN(Value w, next_arg());
        if (!w.is_integral()) return TypeError("* wants int");
        *out_value = w.integer();
        return Status::OK();
      }
      int64_t v = 0;
      bool any = false;
      while (i < n && f[i] >= '0' && f[i] <= '9') {
        v = v * 10 + (f[i++] - '0');
        if (v > 100000000) return ValueError("width too big");
        any = true;
      }
      if (any) *out_value = v;
      return Status::OK();
    };
    RETURN_IF_ERROR(number(&width));
    if (width < -1) {
      left = true;
      width = -width;
    }
    if (i < n && f[i] == '.') {
      ++i;
      prec = 0;
      RETURN_IF_ERROR(number(&prec));
      if (prec < 0) prec = 0;
    }
    while (i < n && (f[i] == 'h' || f[i] == 'l' || f[i] == 'L')) ++i;
    if (i >= n) return ValueError("incomplete format");
    const char type = f[i++];
    RETURN_IF_ERROR(ev.CheckString(static_cast<size_t>(std::max<int64_t>(width, 0)) + out.size()));
    if (type == '%') {
      out.push_back('%');
      continue;
    }
    if (!have_arg) {
      ASSIGN_OR_RETURN(arg, next_arg());
    }
    std::string body;
    size_t insert_at = 0;  // where zero padding goes (after a sign and a 0x prefix)
    char fill = ' ';
    switch (type) {
      case 's':
      case 'r': {
        RETURN_IF_ERROR(type == 's' ? AppendStr(arg, &body) : AppendRepr(arg, &body));
        if (prec >= 0) body.resize(text::OffsetOfCodePoint(body, static_cast<size_t>(prec)));
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o': {
        if (arg.is_undefined()) return UndefinedError(arg);
        const bool decimal = type == 'd' || type == 'i' || type == 'u';
        int64_t v;
        if (arg.is_integral()) {
          v = arg.integer();
        } else if (arg.is_float() && decimal) {
          const double d = arg.number();
          if (std::isnan(d)) return ValueError("cannot convert float NaN to integer");
          if (std::isinf(d) || std::fabs(d) >= 9.2233720368547758e18)
            return Unsupported("integer overflow beyond 64 bits");
          v = static_cast<int64_t>(std::trunc(d));
        } else {
          return TypeError(
              std::string("%") + type + " format: " +
              (decimal ? "a real number is required, not " : "an integer is required, not ") +
              TypeName(arg));
        }
        const bool neg = v < 0;
        const unsigned __int128 mag =
            neg ? static_cast<unsigned __int128>(-static_cast<__int128>(v))
                : static_cast<unsigned __int128>(v);
        const int base = decimal ? 10 : type == 'o' ? 8 : 16;
        std::string digits;
        unsigned __int128 m = mag;
        do {
          const int d = static_cast<int>(m % static_cast<unsigned>(base));
          digits.push_back(
              static_cast<char>(d < 10 ? '0' + d : (type == 'X' ? 'A' : 'a') + d - 10));
          m /= static_cast<unsigned>(base);
        } while (m > 0);
        std::reverse(digits.begin(), digits.end());
        if (prec > static_cast<int64_t>(digits.size()))
          digits.insert(0, static_cast<size_t>(prec) - digits.size(), '0');
        std::string prefix = neg ? "-" : plus ? "+" : space ? " " : "";
        if (alt && !decimal) prefix += type == 'o' ? "0o" : type == 'X' ? "0X" : "0x";
        body = prefix + digits;
        insert_at = prefix.size();
        if (zero && !left) fill = '0';
        break;
      }
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G': {
        if (arg.is_undefined()) return UndefinedError(arg);
        if (!arg.is_number())
          return TypeError(std::string("must be real number, not ") + TypeName(arg));
        const double d = arg.number();
        if (std::isnan(d) || std::isinf(d)) {
          body = std::isnan(d) ? "nan" : d < 0 ? "-inf" : "inf";
          if (!std::signbit(d) || std::isnan(d)) body = (plus ? "+" : space ? " " : "") + body;
          if (type == 'E' || type == 'F' || type == 'G') {
            for (char& c : body) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
          }
          break;
        }
        std::string spec = "%";
        if (plus) spec += '+';
        if (space) spec += ' ';
        if (alt) spec += '#';
        spec += "." + std::to_string(prec < 0 ? 6 : std::min<int64_t>(prec, 400)) + type;
        char buf[1024];
        std::snprintf(buf, sizeof buf, spec.c_str(), d);
        body = buf;
        insert_at = (!body.empty() && (body[0] == '-' || body[0] == '+' || body[0] == ' ')) ? 1 : 0;
        if (zero && !left) fill = '0';
        break;
      }
      case 'c': {
        if (arg.is_string()) {
          if (text::CountCodePoints(arg.str()) != 1) return TypeError("%c requires int or char");
          body = arg.str();
        } else if (arg.is_integral()) {
          if (arg.integer() < 0 || arg.integer() > 0x10FFFF)
            return Status::InvalidArgument("OverflowError: %c arg not in range(0x110000)");
          if (arg.integer() >= 0xD800 && arg.integer() <= 0xDFFF)
            return Unsupported("a surrogate code point");
          text::Append(static_cast<uint32_t>(arg.integer()), &body);
        } else {
          return TypeError("%c requires int or char");
        }
        break;
      }
      default: {
        char buf[96];
        std::snprintf(buf, sizeof buf, "unsupported format character '%c' (0x%x) at index %zu",
                      type, static_cast<unsigned>(static_cast<uint8_t>(type)), i - 1);
        (void)spec_start;
        return ValueError(buf);
      }
    }
    PadTo(&body, width, left, fill, fill == '0' ? insert_at : 0);
    out += body;
    RETURN_IF_ERROR(ev.CheckString(out.size()));
  }
  if (argidx < arglen && mapping == nullptr)
    return TypeError("not all arguments converted during string formatting");
  return Value::String(std::move(out));
}

}  // namespace blockkv::jinja
