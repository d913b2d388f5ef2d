// Jinja2's filters (jinja2/filters.py, 3.1) that chat templates use, with transformers' tojson in
// place of Jinja's. Each mirrors its Python function, quirks included:
// join and string print items with str(); map, select, reject, selectattr, rejectattr, unique,
// items and reverse return iterators (always true, printed as a memory address, consumed by one
// use); first of an empty sequence is Undefined; int("4.5") is 4; title() capitalizes after - ( { [
// < and spaces.
//
// Filters Jinja2 has but blockkv refuses (escape/safe and other Markup producers, printf-style
// format, groupby, batch, slice, random, truncate, wordwrap, url filters, xmlattr, pprint...)
// parse, as in Jinja, and fail with an "unsupported" error when they run.
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "attention/model/chat_template_internal.h"

namespace blockkv::jinja {

namespace {

using FilterFn = StatusOr<Value> (*)(Evaluator&, const Value&, CallArgs&);

StatusOr<std::string> SoftStr(const Value& v) {
  std::string s;
  RETURN_IF_ERROR(AppendStr(v, &s));
  return s;
}

Status NotInt(const Value& v) {
  return TypeError(std::string("'") + TypeName(v) + "' object cannot be interpreted as an integer");
}

Value MakeIterator(std::vector<Value> items, std::optional<Status> error = std::nullopt,
                   const char* type_name = "generator") {
  auto it = std::make_shared<IteratorData>();
  it->items = std::move(items);
  it->error = std::move(error);
  it->type_name = type_name;
  return Value::Heap(Kind::kIterator, std::move(it));
}

// make_attrgetter: "a.b.0" looks up a, then b, then item 0, each with the sandbox's getitem; an
// Undefined step becomes `dflt` when one is given (map's default=).
StatusOr<Value> AttrGet(const Value& item, const Value& attribute, const Value* dflt = nullptr) {
  if (attribute.is_none()) return item;
  if (!attribute.is_string()) {
    ASSIGN_OR_RETURN(Value v, GetItem(item, attribute));
    return dflt != nullptr && v.is_undefined() ? *dflt : v;
  }
  Value v = item;
  const std::string& path = attribute.str();
  size_t start = 0;
  for (;;) {
    const size_t dot = path.find('.', start);
    const std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool digits = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
    if (digits && part.size() > 18) return Unsupported("an attribute index beyond 64 bits");
    ASSIGN_OR_RETURN(v, GetItem(v, digits ? Value::Int(std::stoll(part)) : Value::String(part)));
    if (dflt != nullptr && v.is_undefined()) v = *dflt;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return v;
}

Value IgnoreCase(const Value& v) { return v.is_string() ? Value::String(text::Lower(v.str())) : v; }

// ---- filters ----

StatusOr<Value> FAbs(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("abs", a, {}, 0, &p));
  if (v.is_float()) return Value::Float(std::fabs(v.number()));
  if (v.is_integral()) {
    if (v.integer() == INT64_MIN) return Unsupported("integer overflow beyond 64 bits");
    return Value::Int(v.integer() < 0 ? -v.integer() : v.integer());
  }
  return TypeError(std::string("bad operand type for abs(): '") + TypeName(v) + "'");
}

StatusOr<Value> FAttr(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("attr", a, {"name"}, 1, &p));
  if (!p[0]->is_string()) return TypeError("attribute name must be string");
  // hasattr() on an Undefined raises its UndefinedError (only dunder names give AttributeError).
  if (v.is_undefined() && p[0]->str().compare(0, 2, "__") != 0) return UndefinedError(v);
  return GetAttrOnly(v, p[0]->str());
}

StatusOr<Value> FCapitalize(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("capitalize", a, {}, 0, &p));
  ASSIGN_OR_RETURN(std::string s, SoftStr(v));
  return Value::String(text::Capitalize(s));
}

StatusOr<Value> FCenter(Evaluator& ev, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("center", a, {"width"}, 0, &p));
  ASSIGN_OR_RETURN(std::string s, SoftStr(v));
  return Pad(ev, s, p[0] ? p[0] : std::optional<Value>(Value::Int(80)), std::nullopt, 'c');
}

StatusOr<Value> FLength(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("length", a, {}, 0, &p));
  ASSIGN_OR_RETURN(int64_t n, Length(v));
  return Value::Int(n);
}

StatusOr<Value> FDefault(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("default", a, {"default_value", "boolean"}, 0, &p));
  const bool boolean = p[1] && Truthy(*p[1]);
  if (v.is_undefined() || (boolean && !Truthy(v))) return p[0] ? *p[0] : Value::String("");
  return v;
}

StatusOr<Value> FDictSort(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("dictsort", a, {"case_sensitive", "by", "reverse"}, 0, &p));
  const bool case_sensitive = p[0] && Truthy(*p[0]);
  int pos = 0;
  if (p[1]) {
    if (p[1]->is_string() && p[1]->str() == "value") {
      pos = 1;
    } else if (!p[1]->is_string() || p[1]->str() != "key") {
      return Status::InvalidArgument(
          "FilterArgumentError: You can only sort by either \"key\" or \"value\"");
    }
  }
  const bool reverse = p[2] && Truthy(*p[2]);
  if (!v.is_dict())
    return Status::InvalidArgument(std::string("AttributeError: '") + TypeName(v) +
                                   "' object has no attribute 'items'");
  std::vector<Value> items;
  for (const auto& [k, val] : v.dict().items)
    items.push_back(Value::List({k, val}, SeqKind::kTuple));
  auto key = [&](const Value& item) {
    const Value& x = item.seq().items[static_cast<size_t>(pos)];
    return case_sensitive ? x : IgnoreCase(x);
  };
  RETURN_IF_ERROR(StableSort(&items, [&](const Value& x, const Value& y) {
    return reverse ? Less(key(y), key(x)) : Less(key(x), key(y));
  }));
  return Value::List(std::move(items));
}

StatusOr<Value> FFirst(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("first", a, {}, 0, &p));
  if (v.kind() == Kind::kIterator) {
    IteratorData& it = v.iter();
    if (it.pos < it.items.size()) return it.items[it.pos++];
    if (it.error) {
      Status e = *it.error;
      it.error.reset();
      return e;
    }
    return Value::Undefined("No first item, sequence was empty.");
  }
  if (v.is_string()) {
    if (v.str().empty()) return Value::Undefined("No first item, sequence was empty.");
    size_t i = 0;
    text::Next(v.str(), &i);
    return Value::String(v.str().substr(0, i));
  }
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  if (items.empty()) return Value::Undefined("No first item, sequence was empty.");
  return items.front();
}

StatusOr<Value> FLast(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("last", a, {}, 0, &p));
  if (v.kind() == Kind::kIterator)
    return TypeError(std::string("'") + TypeName(v) + "' object is not reversible");
  if (!v.is_undefined() && !v.is_string() && !v.is_seq() && !v.is_dict())
    return TypeError(std::string("'") + TypeName(v) + "' object is not reversible");
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  if (items.empty()) return Value::Undefined("No last item, sequence was empty.");
  return items.back();
}

// Python's float() of a string: digits with single underscores between them, an optional fraction
// and exponent, or inf / infinity / nan; surrounding whitespace is allowed.
bool ParsePyFloat(const std::string& in, double* out) {
  const std::string s = StripChars(in, nullptr, true, true);
  std::string t;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) t.push_back(s[i++]);
  std::string rest = s.substr(i);
  for (char& c : rest) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (rest == "inf" || rest == "infinity" || rest == "nan") {
    *out = std::strtod((t + rest).c_str(), nullptr);
    return true;
  }
  auto digits = [&](bool required) {
    const size_t start = t.size();
    bool last_digit = false;
    while (i < s.size()) {
      if (s[i] >= '0' && s[i] <= '9') {
        t.push_back(s[i++]);
        last_digit = true;
      } else if (s[i] == '_' && last_digit && i + 1 < s.size() && s[i + 1] >= '0' &&
                 s[i + 1] <= '9') {
        ++i;
        last_digit = false;
      } else {
        break;
      }
    }
    return !required || t.size() > start;
  };
  const size_t before = t.size();
  digits(false);
  bool have_digits = t.size() > before;
  if (i < s.size() && s[i] == '.') {
    t.push_back(s[i++]);
    const size_t frac = t.size();
    digits(false);
    have_digits = have_digits || t.size() > frac;
  }
  if (!have_digits) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    t.push_back(s[i++]);
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) t.push_back(s[i++]);
    if (!digits(true)) return false;
  }
  if (i != s.size()) return false;
  *out = std::strtod(t.c_str(), nullptr);
  return true;
}

// Python's int(s, base) for a string; false on ValueError.
bool ParsePyInt(const std::string& in, int64_t base, int64_t* out, bool* overflow) {
  const std::string s = StripChars(in, nullptr, true, true);
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  auto prefix = [&](char p) { return i + 1 < s.size() && s[i] == '0' && (s[i + 1] | 0x20) == p; };
  if (base == 0) {
    base = prefix('x') ? 16 : prefix('o') ? 8 : prefix('b') ? 2 : 10;
    if (base != 10) {
      i += 2;
      if (i < s.size() && s[i] == '_') ++i;
    } else if (i < s.size() && s[i] == '0') {
      // base 0 allows a leading zero only for zero itself
      for (size_t k = i; k < s.size(); ++k) {
        if (s[k] != '0' && s[k] != '_') return false;
      }
    }
  } else if ((base == 16 && prefix('x')) || (base == 8 && prefix('o')) ||
             (base == 2 && prefix('b'))) {
    i += 2;
    if (i < s.size() && s[i] == '_') ++i;
  }
  unsigned __int128 v = 0;
  bool any = false, last_digit = false;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '_') {
      if (!last_digit || i + 1 >= s.size()) return false;
      last_digit = false;
      continue;
    }
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') {
      d = (c | 0x20) - 'a' + 10;
    } else {
      return false;
    }
    if (d >= base) return false;
    v = v * static_cast<unsigned>(base) + static_cast<unsigned>(d);
    if (v > static_cast<unsigned __int128>(INT64_MAX) + 1) *overflow = true;
    any = last_digit = true;
  }
  if (!any) return false;
  if (*overflow || (!neg && v > static_cast<unsigned __int128>(INT64_MAX))) {
    *overflow = true;
    return true;
  }
  *out = neg ? static_cast<int64_t>(-static_cast<__int128>(v)) : static_cast<int64_t>(v);
  return true;
}

StatusOr<Value> FloatToInt(double d) {
  if (std::isinf(d))
    return Status::InvalidArgument("OverflowError: cannot convert float infinity to integer");
  if (std::fabs(d) >= 9.2233720368547758e18) return Unsupported("integer overflow beyond 64 bits");
  return Value::Int(static_cast<int64_t>(std::trunc(d)));
}

StatusOr<Value> FInt(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("int", a, {"default", "base"}, 0, &p));
  const Value dflt = p[0] ? *p[0] : Value::Int(0);
  if (v.is_undefined()) return UndefinedError(v);
  if (v.is_string()) {
    int64_t base = 10;
    bool base_ok = true;
    if (p[1]) {
      if (!p[1]->is_integral()) return NotInt(*p[1]);
      base = p[1]->integer();
      base_ok = base == 0 || (base >= 2 && base <= 36);
    }
    int64_t r = 0;
    bool overflow = false;
    if (base_ok && ParsePyInt(v.str(), base, &r, &overflow)) {
      if (overflow) return Unsupported("integer overflow beyond 64 bits");
      return Value::Int(r);
    }
    double d;
    if (!ParsePyFloat(v.str(), &d) || std::isnan(d)) return dflt;
    return FloatToInt(d);
  }
  if (v.is_integral()) return Value::Int(v.integer());
  if (v.is_float()) {
    if (std::isnan(v.number())) return dflt;
    return FloatToInt(v.number());
  }
  return dflt;
}

StatusOr<Value> FFloat(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("float", a, {"default"}, 0, &p));
  const Value dflt = p[0] ? *p[0] : Value::Float(0.0);
  if (v.is_undefined()) return UndefinedError(v);
  if (v.is_number()) return Value::Float(v.number());
  if (v.is_string()) {
    double d;
    if (ParsePyFloat(v.str(), &d)) return Value::Float(d);
  }
  return dflt;
}

StatusOr<Value> FIndent(Evaluator& ev, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("indent", a, {"width", "first", "blank"}, 0, &p));
  if (v.is_undefined()) return UndefinedError(v);
  if (!v.is_string())
    return TypeError(std::string("unsupported operand type(s) for +=: '") + TypeName(v) +
                     "' and 'str'");
  std::string indention = "    ";
  if (p[0]) {
    if (p[0]->is_string()) {
      indention = p[0]->str();
    } else if (p[0]->is_integral()) {
      const int64_t w = p[0]->integer();
      RETURN_IF_ERROR(ev.CheckString(w > 0 ? static_cast<size_t>(w) : 0));
      indention.assign(w > 0 ? static_cast<size_t>(w) : 0, ' ');
    } else {
      return TypeError(std::string("can't multiply sequence by non-int of type '") +
                       TypeName(*p[0]) + "'");
    }
  }
  const std::vector<std::string> lines = SplitLines(v.str() + "\n", false);
  RETURN_IF_ERROR(ev.CheckString(v.str().size() + lines.size() * (indention.size() + 1)));
  std::string rv;
  if (p[2] && Truthy(*p[2])) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) rv += "\n" + indention;
      rv += lines[i];
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv += "\n";
      if (!lines[i].empty()) rv += indention;
      rv += lines[i];
    }
  }
  if (p[1] && Truthy(*p[1])) rv = indention + rv;
  return Value::String(std::move(rv));
}

StatusOr<Value> FItems(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("items", a, {}, 0, &p));
  if (v.is_undefined()) return MakeIterator({});
  if (!v.is_dict()) return MakeIterator({}, TypeError("Can only get item pairs from a mapping."));
  std::vector<Value> items;
  for (const auto& [k, val] : v.dict().items)
    items.push_back(Value::List({k, val}, SeqKind::kTuple));
  return MakeIterator(std::move(items));
}

StatusOr<Value> FJoin(Evaluator& ev, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("join", a, {"d", "attribute"}, 0, &p));
  std::string sep;
  if (p[0]) RETURN_IF_ERROR(AppendStr(*p[0], &sep));
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    Value item = items[i];
    if (p[1]) {
      ASSIGN_OR_RETURN(item, AttrGet(item, *p[1]));
    }
    if (i > 0) out += sep;
    RETURN_IF_ERROR(AppendStr(item, &out));
    RETURN_IF_ERROR(ev.CheckString(out.size()));
  }
  return Value::String(std::move(out));
}

StatusOr<Value> FList(Evaluator& ev, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("list", a, {}, 0, &p));
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  RETURN_IF_ERROR(ev.CheckList(items.size()));
  return Value::List(std::move(items));
}

StatusOr<Value> FLower(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("lower", a, {}, 0, &p));
  ASSIGN_OR_RETURN(std::string s, SoftStr(v));
  return Value::String(text::Lower(s));
}

StatusOr<Value> FUpper(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("upper", a, {}, 0, &p));
  ASSIGN_OR_RETURN(std::string s, SoftStr(v));
  return Value::String(text::Upper(s));
}

StatusOr<Value> FString(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("string", a, {}, 0, &p));
  ASSIGN_OR_RETURN(std::string s, SoftStr(v));
  return Value::String(std::move(s));
}

StatusOr<Value> FTitle(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("title", a, {}, 0, &p));
  ASSIGN_OR_RETURN(std::string s, SoftStr(v));
  // re.split(r"([-\s({\[<]+)") keeps the separators; every piece is item[0].upper() +
  // item[1:].lower().
  const std::vector<uint32_t> cps = text::Decode(s);
  auto is_sep = [](uint32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || text::IsSpace(c);
  };
  std::string out;
  size_t i = 0;
  while (i < cps.size()) {
    size_t j = i + 1;
    const bool sep = is_sep(cps[i]);
    while (j < cps.size() && is_sep(cps[j]) == sep) ++j;
    out += text::Upper(text::Encode(cps, i, i + 1));
    out += text::Lower(text::Encode(cps, i + 1, j));
    i = j;
  }
  return Value::String(std::move(out));
}

StatusOr<Value> FTrim(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("trim", a, {"chars"}, 0, &p));
  ASSIGN_OR_RETURN(std::string s, SoftStr(v));
  const std::string* chars = nullptr;
  if (p[0] && !p[0]->is_none()) {
    if (!p[0]->is_string()) return TypeError("strip arg must be None or str");
    chars = &p[0]->str();
  }
  return Value::String(StripChars(s, chars, true, true));
}

StatusOr<Value> FReplace(Evaluator& ev, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("replace", a, {"old", "new", "count"}, 2, &p));
  ASSIGN_OR_RETURN(std::string s, SoftStr(v));
  ASSIGN_OR_RETURN(std::string old, SoftStr(*p[0]));
  ASSIGN_OR_RETURN(std::string with, SoftStr(*p[1]));
  int64_t count = -1;
  if (p[2] && !p[2]->is_none()) {
    if (!p[2]->is_integral()) return NotInt(*p[2]);
    count = p[2]->integer();
  }
  const size_t worst = s.size() + (text::CountCodePoints(s) + 1) * with.size();
  if (worst > ev.limits().max_string_bytes)
    RETURN_IF_ERROR(ev.CheckString(Replace(s, old, "", count).size()));
  std::string r = Replace(s, old, with, count);
  RETURN_IF_ERROR(ev.CheckString(r.size()));
  return Value::String(std::move(r));
}

StatusOr<Value> FReverse(Evaluator& ev, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("reverse", a, {}, 0, &p));
  if (v.is_string()) {
    std::vector<uint32_t> cps = text::Decode(v.str());
    std::reverse(cps.begin(), cps.end());
    return Value::String(text::Encode(cps));
  }
  if (v.kind() == Kind::kIterator) {
    ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
    std::reverse(items.begin(), items.end());
    RETURN_IF_ERROR(ev.CheckList(items.size()));
    return Value::List(std::move(items));
  }
  if (!v.is_undefined() && !v.is_seq() && !v.is_dict())
    return Status::InvalidArgument("FilterArgumentError: argument must be iterable");
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  std::reverse(items.begin(), items.end());
  const char* type = v.is_dict()                       ? "dict_reversekeyiterator"
                     : v.is_undefined()                ? "reversed"
                     : v.seq_kind() == SeqKind::kRange ? "range_iterator"
                                                       : "list_reverseiterator";
  return MakeIterator(std::move(items), std::nullopt, type);
}

StatusOr<Value> FRound(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("round", a, {"precision", "method"}, 0, &p));
  int64_t precision = 0;
  if (p[0]) {
    if (!p[0]->is_integral()) return NotInt(*p[0]);
    precision = p[0]->integer();
  }
  std::string method = "common";
  if (p[1]) {
    if (!p[1]->is_string())
      return Status::InvalidArgument("FilterArgumentError: method must be common, ceil or floor");
    method = p[1]->str();
  }
  if (method != "common" && method != "ceil" && method != "floor")
    return Status::InvalidArgument("FilterArgumentError: method must be common, ceil or floor");
  if (v.is_undefined()) return UndefinedError(v);
  if (!v.is_number())
    return TypeError(std::string("type ") + TypeName(v) + " doesn't define __round__ method");
  if (precision < 0 || precision > 17) return Unsupported("round() with a precision outside 0..17");
  if (method == "common") {
    if (v.is_integral()) return Value::Int(v.integer());
    const double x = v.number();
    if (!std::isfinite(x)) return Value::Float(x);
    // Python rounds the exact binary value correctly to `precision` decimals, ties to even; so does
    // glibc's printf.
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), x);
    return Value::Float(std::strtod(buf, nullptr));
  }
  int64_t p10 = 1;
  for (int64_t i = 0; i < precision; ++i) p10 *= 10;
  double r;
  if (v.is_integral()) {
    __int128 x = static_cast<__int128>(v.integer()) * p10;
    r = static_cast<double>(x) / static_cast<double>(p10);
  } else {
    const double x = v.number() * static_cast<double>(p10);
    if (!std::isfinite(x))
      return Status::InvalidArgument("OverflowError: cannot convert float infinity to integer");
    r = (method == "ceil" ? std::ceil(x) : std::floor(x)) / static_cast<double>(p10);
  }
  return Value::Float(r);
}

// The key of sort / min / max / unique: the item or its attribute(s), lowercased unless
// case_sensitive.
StatusOr<Value> SortKey(const Value& item, const std::optional<Value>& attribute,
                        bool case_sensitive, bool multi) {
  if (!attribute || attribute->is_none()) return case_sensitive ? item : IgnoreCase(item);
  if (multi && attribute->is_string() && attribute->str().find(',') != std::string::npos) {
    std::vector<Value> keys;
    const std::string& attrs = attribute->str();
    size_t start = 0;
    for (;;) {
      const size_t comma = attrs.find(',', start);
      ASSIGN_OR_RETURN(Value k,
                       AttrGet(item, Value::String(attrs.substr(start, comma == std::string::npos
                                                                           ? std::string::npos
                                                                           : comma - start))));
      keys.push_back(case_sensitive ? k : IgnoreCase(k));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return Value::List(std::move(keys));
  }
  ASSIGN_OR_RETURN(Value k, AttrGet(item, *attribute));
  return case_sensitive ? k : IgnoreCase(k);
}

StatusOr<Value> FSort(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("sort", a, {"reverse", "case_sensitive", "attribute"}, 0, &p));
  const bool reverse = p[0] && Truthy(*p[0]);
  const bool cs = p[1] && Truthy(*p[1]);
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  std::vector<Value> keyed;
  for (const Value& item : items) {
    ASSIGN_OR_RETURN(Value k, SortKey(item, p[2], cs, true));
    keyed.push_back(Value::List({k, item}, SeqKind::kTuple));
  }
  RETURN_IF_ERROR(StableSort(&keyed, [&](const Value& x, const Value& y) {
    const Value& kx = x.seq().items[0];
    const Value& ky = y.seq().items[0];
    return reverse ? Less(ky, kx) : Less(kx, ky);
  }));
  std::vector<Value> out;
  for (const Value& k : keyed) out.push_back(k.seq().items[1]);
  return Value::List(std::move(out));
}

StatusOr<Value> MinMax(const Value& v, CallArgs& a, bool max) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs(max ? "max" : "min", a, {"case_sensitive", "attribute"}, 0, &p));
  const bool cs = p[0] && Truthy(*p[0]);
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  ASSIGN_OR_RETURN(Value best_key, SortKey(items[0], p[1], cs, false));
  for (size_t i = 1; i < items.size(); ++i) {
    ASSIGN_OR_RETURN(Value k, SortKey(items[i], p[1], cs, false));
    ASSIGN_OR_RETURN(bool better, max ? Less(best_key, k) : Less(k, best_key));
    if (better) {
      best = i;
      best_key = std::move(k);
    }
  }
  return items[best];
}

StatusOr<Value> FMin(Evaluator&, const Value& v, CallArgs& a) { return MinMax(v, a, false); }
StatusOr<Value> FMax(Evaluator&, const Value& v, CallArgs& a) { return MinMax(v, a, true); }

StatusOr<Value> FSum(Evaluator& ev, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("sum", a, {"attribute", "start"}, 0, &p));
  Value total = p[1] ? *p[1] : Value::Int(0);
  if (total.is_string()) return TypeError("sum() can't sum strings [use ''.join(seq) instead]");
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  for (const Value& item : items) {
    Value x = item;
    if (p[0]) {
      ASSIGN_OR_RETURN(x, AttrGet(item, *p[0]));
    }
    ASSIGN_OR_RETURN(total, BinaryOp(ev, BinOp::kAdd, total, x));
  }
  return total;
}

StatusOr<Value> FUnique(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("unique", a, {"case_sensitive", "attribute"}, 0, &p));
  const bool cs = p[0] && Truthy(*p[0]);
  std::vector<Value> out, seen;
  StatusOr<std::vector<Value>> items = Iterate(v);
  if (!items.ok()) return MakeIterator({}, items.status());
  for (const Value& item : *items) {
    StatusOr<Value> key = SortKey(item, p[1], cs, false);
    if (!key.ok()) return MakeIterator(std::move(out), key.status());
    if (!Hashable(*key))
      return MakeIterator(std::move(out),
                          TypeError(std::string("unhashable type: '") + TypeName(*key) + "'"));
    bool dup = false;
    for (const Value& s : seen) {
      if (Equal(s, *key)) {
        dup = true;
        break;
      }
    }
    if (!dup) {
      seen.push_back(*key);
      out.push_back(item);
    }
  }
  return MakeIterator(std::move(out));
}

StatusOr<Value> FMap(Evaluator& ev, const Value& v, CallArgs& a) {
  std::vector<Value> out;
  if (!Truthy(v)) return MakeIterator({});
  StatusOr<std::vector<Value>> items = Iterate(v);
  if (!items.ok()) return MakeIterator({}, items.status());
  const bool by_attribute =
      a.args.empty() && std::any_of(a.kwargs.begin(), a.kwargs.end(),
                                    [](const auto& kw) { return kw.first == "attribute"; });
  if (by_attribute) {
    Value attribute, dflt = Value::None();
    for (const auto& [k, val] : a.kwargs) {
      if (k == "attribute") {
        attribute = val;
      } else if (k == "default") {
        dflt = val;
      } else {
        return MakeIterator(
            {}, Status::InvalidArgument("FilterArgumentError: Unexpected keyword argument '" + k +
                                        "'"));
      }
    }
    for (const Value& item : *items) {
      StatusOr<Value> r = AttrGet(item, attribute, dflt.is_none() ? nullptr : &dflt);
      if (!r.ok()) return MakeIterator(std::move(out), r.status());
      out.push_back(std::move(r).value());
    }
    return MakeIterator(std::move(out));
  }
  if (a.args.empty())
    return MakeIterator(
        {}, Status::InvalidArgument("FilterArgumentError: map requires a filter argument"));
  if (!a.args[0].is_string())
    return MakeIterator({}, Status::InvalidArgument("TemplateRuntimeError: No filter named " +
                                                    std::string(TypeName(a.args[0]))));
  bool supported = false;
  const int filter = FindFilter(a.args[0].str(), &supported);
  if (filter < 0)
    return MakeIterator({}, Status::InvalidArgument("TemplateRuntimeError: No filter named '" +
                                                    a.args[0].str() + "' found."));
  if (!supported) return MakeIterator({}, Unsupported("filter '" + a.args[0].str() + "'"));
  for (const Value& item : *items) {
    CallArgs sub;
    sub.args.assign(a.args.begin() + 1, a.args.end());
    sub.kwargs = a.kwargs;
    StatusOr<Value> r = CallFilter(ev, filter, item, std::move(sub));
    if (!r.ok()) return MakeIterator(std::move(out), r.status());
    out.push_back(std::move(r).value());
  }
  return MakeIterator(std::move(out));
}

StatusOr<Value> SelectOrReject(Evaluator& ev, const Value& v, CallArgs& a, bool select,
                               bool by_attr) {
  std::vector<Value> out;
  if (!Truthy(v)) return MakeIterator({});
  StatusOr<std::vector<Value>> items = Iterate(v);
  if (!items.ok()) return MakeIterator({}, items.status());
  size_t off = 0;
  Value attr;
  if (by_attr) {
    if (a.args.empty())
      return MakeIterator(
          {}, Status::InvalidArgument("FilterArgumentError: Missing parameter for attribute name"));
    attr = a.args[0];
    off = 1;
  }
  int test = -1;
  if (a.args.size() > off) {
    if (!a.args[off].is_string())
      return MakeIterator({}, Status::InvalidArgument("TemplateRuntimeError: No test named " +
                                                      std::string(TypeName(a.args[off]))));
    bool supported = false;
    test = FindTest(a.args[off].str(), &supported);
    if (test < 0)
      return MakeIterator({}, Status::InvalidArgument("TemplateRuntimeError: No test named '" +
                                                      a.args[off].str() + "' found."));
    if (!supported) return MakeIterator({}, Unsupported("test '" + a.args[off].str() + "'"));
  }
  for (const Value& item : *items) {
    Value x = item;
    if (by_attr) {
      StatusOr<Value> r = AttrGet(item, attr);
      if (!r.ok()) return MakeIterator(std::move(out), r.status());
      x = std::move(r).value();
    }
    bool pass;
    if (test >= 0) {
      CallArgs sub;
      sub.args.assign(a.args.begin() + static_cast<ptrdiff_t>(off) + 1, a.args.end());
      sub.kwargs = a.kwargs;
      StatusOr<bool> r = CallTest(ev, test, x, std::move(sub));
      if (!r.ok()) return MakeIterator(std::move(out), r.status());
      pass = *r;
    } else {
      pass = Truthy(x);
    }
    if (pass == select) out.push_back(item);
  }
  return MakeIterator(std::move(out));
}

StatusOr<Value> FSelect(Evaluator& ev, const Value& v, CallArgs& a) {
  return SelectOrReject(ev, v, a, true, false);
}
StatusOr<Value> FReject(Evaluator& ev, const Value& v, CallArgs& a) {
  return SelectOrReject(ev, v, a, false, false);
}
StatusOr<Value> FSelectAttr(Evaluator& ev, const Value& v, CallArgs& a) {
  return SelectOrReject(ev, v, a, true, true);
}
StatusOr<Value> FRejectAttr(Evaluator& ev, const Value& v, CallArgs& a) {
  return SelectOrReject(ev, v, a, false, true);
}

// transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None,
// sort_keys=False).
StatusOr<Value> FToJson(Evaluator& ev, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(
      BindArgs("tojson", a, {"ensure_ascii", "indent", "separators", "sort_keys"}, 0, &p));
  JsonOptions o;
  o.ensure_ascii = p[0] && Truthy(*p[0]);
  if (p[1] && !p[1]->is_none()) {
    o.has_indent = true;
    if (p[1]->is_string()) {
      o.indent = p[1]->str();
    } else if (p[1]->is_integral()) {
      const int64_t w = p[1]->integer();
      RETURN_IF_ERROR(ev.CheckString(w > 0 ? static_cast<size_t>(w) : 0));
      o.indent.assign(w > 0 ? static_cast<size_t>(w) : 0, ' ');
    } else {
      return TypeError(std::string("can't multiply sequence by non-int of type '") +
                       TypeName(*p[1]) + "'");
    }
    o.item_sep = ",";
  }
  if (p[2] && !p[2]->is_none()) {
    ASSIGN_OR_RETURN(std::vector<Value> seps, Iterate(*p[2]));
    if (seps.size() != 2)
      return ValueError(std::string(seps.size() < 2 ? "not enough" : "too many") +
                        " values to unpack (expected 2)");
    for (const Value& s : seps) {
      if (!s.is_string())
        return TypeError(std::string("can only concatenate str (not \"") + TypeName(s) +
                         "\") to str");
    }
    o.item_sep = seps[0].str();
    o.key_sep = seps[1].str();
  }
  o.sort_keys = p[3] && Truthy(*p[3]);
  std::string out;
  RETURN_IF_ERROR(ToJson(v, o, ev.limits().max_string_bytes, &out));
  RETURN_IF_ERROR(ev.CheckString(out.size()));
  return Value::String(std::move(out));
}

struct FilterEntry {
  const char* name;
  FilterFn fn;  // null: Jinja2 has it, blockkv refuses it
};

const FilterEntry kFilters[] = {
    {"abs", FAbs},
    {"attr", FAttr},
    {"batch", nullptr},
    {"capitalize", FCapitalize},
    {"center", FCenter},
    {"count", FLength},
    {"d", FDefault},
    {"default", FDefault},
    {"dictsort", FDictSort},
    {"e", nullptr},
    {"escape", nullptr},
    {"filesizeformat", nullptr},
    {"first", FFirst},
    {"float", FFloat},
    {"forceescape", nullptr},
    {"format", nullptr},
    {"groupby", nullptr},
    {"indent", FIndent},
    {"int", FInt},
    {"join", FJoin},
    {"last", FLast},
    {"length", FLength},
    {"list", FList},
    {"lower", FLower},
    {"items", FItems},
    {"map", FMap},
    {"min", FMin},
    {"max", FMax},
    {"pprint", nullptr},
    {"random", nullptr},
    {"reject", FReject},
    {"rejectattr", FRejectAttr},
    {"replace", FReplace},
    {"reverse", FReverse},
    {"round", FRound},
    {"safe", nullptr},
    {"select", FSelect},
    {"selectattr", FSelectAttr},
    {"slice", nullptr},
    {"sort", FSort},
    {"string", FString},
    {"striptags", nullptr},
    {"sum", FSum},
    {"title", FTitle},
    {"trim", FTrim},
    {"truncate", nullptr},
    {"unique", FUnique},
    {"upper", FUpper},
    {"urlencode", nullptr},
    {"urlize", nullptr},
    {"wordcount", nullptr},
    {"wordwrap", nullptr},
    {"xmlattr", nullptr},
    {"tojson", FToJson},
};

}  // namespace

int FindFilter(std::string_view name, bool* supported) {
  for (size_t i = 0; i < std::size(kFilters); ++i) {
    if (name == kFilters[i].name) {
      *supported = kFilters[i].fn != nullptr;
      return static_cast<int>(i);
    }
  }
  *supported = false;
  return -1;
}

StatusOr<Value> CallFilter(Evaluator& ev, int index, const Value& operand, CallArgs args) {
  const FilterEntry& f = kFilters[index];
  if (f.fn == nullptr) return Unsupported(std::string("filter '") + f.name + "'");
  RETURN_IF_ERROR(ev.Charge());
  return f.fn(ev, operand, args);
}

}  // namespace blockkv::jinja
