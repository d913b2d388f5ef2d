// Values of the chat template interpreter and the Python semantics they need: truthiness, str() and
// repr() (what a template prints), ==, <, len(), iteration, and JSON in (the render context) and
// out (transformers' tojson filter, which is json.dumps).
//
// Printing has to match Python to the byte: floats print as float.__repr__ (shortest round trip,
// with Python's switch to exponent notation), strings inside containers as repr() with its choice
// of quotes and escapes of non-printable code points, and dict order is insertion order.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "attention/model/chat_template_internal.h"

namespace blockkv::jinja {

namespace {

constexpr int kMaxReprDepth = 1000;  // Python's recursion limit would stop a deeper repr too
constexpr int kMaxJsonDepth = 256;

}  // namespace

// ------------------------------------------------------------------------------------------------
// Value

Value Value::String(std::string s) {
  Value v(Kind::kString);
  v.heap_ = std::make_shared<StringData>(std::move(s));
  return v;
}

int Nesting(const Value& v) {
  if (v.is_seq()) return v.seq().nesting;
  if (v.is_dict()) return v.dict().nesting;
  return 0;
}

Value Value::List(std::vector<Value> items, SeqKind kind) {
  auto d = std::make_shared<SeqData>();
  d->kind = kind;
  d->items = std::move(items);
  for (const Value& i : d->items) d->nesting = std::max(d->nesting, Nesting(i) + 1);
  Value v(Kind::kSeq);
  v.heap_ = std::move(d);
  return v;
}

Value Value::Range(int64_t start, int64_t stop, int64_t step) {
  std::vector<Value> items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) items.push_back(Int(i));
  Value v = List(std::move(items), SeqKind::kRange);
  auto* d = static_cast<SeqData*>(v.heap_.get());
  d->start = start;
  d->stop = stop;
  d->step = step;
  return v;
}

Value Value::MakeDict(std::shared_ptr<DictData> d) {
  d->nesting = 1;
  for (const auto& [k, val] : d->items)
    d->nesting = std::max({d->nesting, Nesting(k) + 1, Nesting(val) + 1});
  Value v(Kind::kDict);
  v.heap_ = std::move(d);
  return v;
}

Value Value::Undefined(std::string hint, std::string owner, std::string name, bool name_is_str,
                       bool unsafe) {
  Value v(Kind::kUndefined);
  auto d = std::make_shared<UndefinedData>();
  d->hint = std::move(hint);
  d->owner = std::move(owner);
  d->name = std::move(name);
  d->name_is_str = name_is_str;
  d->unsafe = unsafe;
  v.heap_ = std::move(d);
  return v;
}

const std::string& Value::str() const { return static_cast<const StringData*>(heap_.get())->s; }
const SeqData& Value::seq() const { return *static_cast<const SeqData*>(heap_.get()); }
const DictData& Value::dict() const { return *static_cast<const DictData*>(heap_.get()); }
NamespaceData& Value::ns() const { return *static_cast<NamespaceData*>(heap_.get()); }
LoopData& Value::loop() const { return *static_cast<LoopData*>(heap_.get()); }
const CallableData& Value::callable() const {
  return *static_cast<const CallableData*>(heap_.get());
}
IteratorData& Value::iter() const { return *static_cast<IteratorData*>(heap_.get()); }
const UndefinedData* Value::undefined_data() const {
  return static_cast<const UndefinedData*>(heap_.get());
}
SeqKind Value::seq_kind() const { return seq().kind; }

ptrdiff_t DictData::Find(const Value& key) const {
  if (key.is_string()) {
    auto it = str_index.find(key.str());
    return it == str_index.end() ? -1 : static_cast<ptrdiff_t>(it->second);
  }
  for (size_t i = 0; i < items.size(); ++i) {
    if (!items[i].first.is_string() && Equal(items[i].first, key)) return static_cast<ptrdiff_t>(i);
  }
  return -1;
}

const Value* DictData::FindStr(const std::string& key) const {
  auto it = str_index.find(key);
  return it == str_index.end() ? nullptr : &items[it->second].second;
}

void DictData::Set(Value key, Value value) {
  const ptrdiff_t at = Find(key);
  if (at >= 0) {
    items[static_cast<size_t>(at)].second = std::move(value);
    return;
  }
  if (key.is_string()) str_index.emplace(key.str(), items.size());
  items.emplace_back(std::move(key), std::move(value));
}

Value* NamespaceData::Find(const std::string& name) {
  for (auto& [k, v] : attrs) {
    if (k == name) return &v;
  }
  return nullptr;
}

// ------------------------------------------------------------------------------------------------
// Names and errors

const char* TypeName(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kSeq:
      switch (v.seq_kind()) {
        case SeqKind::kList:
          return "list";
        case SeqKind::kTuple:
          return "tuple";
        case SeqKind::kRange:
          return "range";
        case SeqKind::kDictKeys:
          return "dict_keys";
        case SeqKind::kDictValues:
          return "dict_values";
        case SeqKind::kDictItems:
          return "dict_items";
      }
      return "list";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kLoop:
      return "LoopContext";
    case Kind::kCallable:
      return v.callable().kind == Builtin::kMethod ? "builtin_function_or_method" : "function";
    case Kind::kIterator:
      return v.iter().type_name;
  }
  return "object";
}

std::string ObjectTypeRepr(const Value& v) {
  switch (v.kind()) {
    case Kind::kNone:
      return "None";
    case Kind::kNamespace:
      return "jinja2.utils.Namespace object";
    case Kind::kLoop:
      return "jinja2.runtime.LoopContext object";
    case Kind::kUndefined:
      return "jinja2.runtime.Undefined object";
    default:
      return std::string(TypeName(v)) + " object";
  }
}

std::string UndefinedMessage(const Value& v) {
  const UndefinedData* d = v.undefined_data();
  if (d == nullptr) return "undefined value";
  if (!d->hint.empty()) return d->hint;
  if (d->owner.empty()) return "'" + d->name + "' is undefined";
  if (!d->name_is_str) return d->owner + " has no element " + d->name;
  return "'" + d->owner + "' has no attribute '" + d->name + "'";
}

Status UndefinedError(const Value& undefined) {
  const UndefinedData* d = undefined.undefined_data();
  const char* type = d != nullptr && d->unsafe ? "SecurityError: " : "UndefinedError: ";
  return Status::InvalidArgument(type + UndefinedMessage(undefined));
}

Status Unsupported(const std::string& what) {
  return Status::InvalidArgument("unsupported: " + what);
}

// ------------------------------------------------------------------------------------------------
// Truth, str, repr

bool Truthy(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
    case Kind::kInt:
      return v.integer() != 0;
    case Kind::kFloat:
      return v.number() != 0.0;
    case Kind::kString:
      return !v.str().empty();
    case Kind::kSeq:
      return !v.seq().items.empty();
    case Kind::kDict:
      return !v.dict().items.empty();
    case Kind::kLoop:
      return v.loop().items && !v.loop().items->empty();
    default:
      return true;  // generators, functions and namespaces are objects without __len__
  }
}

std::string FloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));
  std::string out;
  if (!sci.empty() && sci[0] == '-') {
    out.push_back('-');
    sci.remove_prefix(1);
  }
  const size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e)) {
    if (c != '.') digits.push_back(c);
  }
  const int exp10 = std::atoi(std::string(sci.substr(e + 1)).c_str());
  const int decpt = exp10 + 1;  // digits are 0.d1d2... x 10^decpt
  const int n = static_cast<int>(digits.size());
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
    } else if (decpt >= n) {
      out += digits + std::string(static_cast<size_t>(decpt - n), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(decpt)) + "." +
             digits.substr(static_cast<size_t>(decpt));
    }
  } else {
    out += digits.substr(0, 1);
    if (n > 1) out += "." + digits.substr(1);
    const int x = decpt - 1;
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
    out += eb;
  }
  return out;
}

namespace {

void AppendStringRepr(const std::string& s, std::string* out) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  out->push_back(quote);
  size_t i = 0;
  while (i < s.size()) {
    const uint32_t cp = text::Next(s, &i);
    char buf[16];
    if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(cp));
    } else if (cp == '\t') {
      *out += "\\t";
    } else if (cp == '\n') {
      *out += "\\n";
    } else if (cp == '\r') {
      *out += "\\r";
    } else if (cp < 0x20 || cp == 0x7F) {
      std::snprintf(buf, sizeof buf, "\\x%02x", cp);
      *out += buf;
    } else if (cp < 0x7F || text::IsPrintable(cp)) {
      text::Append(cp, out);
    } else {
      if (cp <= 0xFF) {
        std::snprintf(buf, sizeof buf, "\\x%02x", cp);
      } else if (cp <= 0xFFFF) {
        std::snprintf(buf, sizeof buf, "\\u%04x", cp);
      } else {
        std::snprintf(buf, sizeof buf, "\\U%08x", cp);
      }
      *out += buf;
    }
  }
  out->push_back(quote);
}

class Repr {
 public:
  Status Append(const Value& v, std::string* out, int depth) {
    if (depth > kMaxReprDepth)
      return Status::InvalidArgument("RecursionError: maximum recursion depth exceeded");
    switch (v.kind()) {
      case Kind::kUndefined:
        *out += "Undefined";
        return Status::OK();
      case Kind::kString:
        AppendStringRepr(v.str(), out);
        return Status::OK();
      case Kind::kSeq:
        return AppendSeq(v, out, depth);
      case Kind::kDict:
        return AppendDict(v.dict().items, out, depth);
      case Kind::kNamespace: {
        const NamespaceData* ns = &v.ns();
        for (const NamespaceData* active : active_) {
          if (active == ns) {
            *out += "<Namespace {...}>";
            return Status::OK();
          }
        }
        active_.push_back(ns);
        *out += "<Namespace ";
        std::vector<std::pair<Value, Value>> attrs;
        for (const auto& [k, val] : ns->attrs) attrs.emplace_back(Value::String(k), val);
        Status s = AppendDict(attrs, out, depth + 1);
        *out += ">";
        active_.pop_back();
        return s;
      }
      case Kind::kLoop: {
        const LoopData& l = v.loop();
        *out += "<LoopContext " + std::to_string(l.index0 + 1) + "/" +
                std::to_string(l.items ? l.items->size() : 0) + ">";
        return Status::OK();
      }
      case Kind::kCallable:
        if (v.callable().kind == Builtin::kMacro) {
          *out += "<Macro ";
          AppendStringRepr(v.callable().name, out);
          *out += ">";
          return Status::OK();
        }
        [[fallthrough]];
      case Kind::kIterator:
        return Unsupported(std::string("printing a ") + TypeName(v) +
                           " (Python prints its memory address)");
      default:
        return AppendStr(v, out);
    }
  }

 private:
  Status AppendSeq(const Value& v, std::string* out, int depth) {
    const SeqData& s = v.seq();
    const char* open = "[";
    const char* close = "]";
    switch (s.kind) {
      case SeqKind::kList:
        break;
      case SeqKind::kTuple:
        open = "(", close = s.items.size() == 1 ? ",)" : ")";
        break;
      case SeqKind::kRange:
        *out += "range(" + std::to_string(s.start) + ", " + std::to_string(s.stop);
        if (s.step != 1) *out += ", " + std::to_string(s.step);
        *out += ")";
        return Status::OK();
      case SeqKind::kDictKeys:
        open = "dict_keys([";
        close = "])";
        break;
      case SeqKind::kDictValues:
        open = "dict_values([";
        close = "])";
        break;
      case SeqKind::kDictItems:
        open = "dict_items([";
        close = "])";
        break;
    }
    *out += open;
    for (size_t i = 0; i < s.items.size(); ++i) {
      if (i > 0) *out += ", ";
      RETURN_IF_ERROR(Append(s.items[i], out, depth + 1));
    }
    *out += close;
    return Status::OK();
  }

  Status AppendDict(const std::vector<std::pair<Value, Value>>& items, std::string* out,
                    int depth) {
    *out += "{";
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) *out += ", ";
      RETURN_IF_ERROR(Append(items[i].first, out, depth + 1));
      *out += ": ";
      RETURN_IF_ERROR(Append(items[i].second, out, depth + 1));
    }
    *out += "}";
    return Status::OK();
  }

  std::vector<const NamespaceData*> active_;
};

}  // namespace

Status AppendRepr(const Value& v, std::string* out) {
  Repr r;
  return r.Append(v, out, 0);
}

Status AppendStr(const Value& v, std::string* out) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return Status::OK();
    case Kind::kNone:
      *out += "None";
      return Status::OK();
    case Kind::kBool:
      *out += v.boolean() ? "True" : "False";
      return Status::OK();
    case Kind::kInt:
      *out += std::to_string(v.integer());
      return Status::OK();
    case Kind::kFloat:
      *out += FloatRepr(v.number());
      return Status::OK();
    case Kind::kString:
      *out += v.str();
      return Status::OK();
    default:
      return AppendRepr(v, out);
  }
}

// ------------------------------------------------------------------------------------------------
// Comparison

namespace {

bool NumEqual(const Value& a, const Value& b) {
  if (a.is_integral() && b.is_integral()) return a.integer() == b.integer();
  if (a.is_float() && b.is_float()) return a.number() == b.number();
  // int vs float: exact, as Python compares them.
  const Value& f = a.is_float() ? a : b;
  const Value& i = a.is_float() ? b : a;
  return static_cast<long double>(i.integer()) == static_cast<long double>(f.number());
}

bool NumLess(const Value& a, const Value& b) {
  if (a.is_integral() && b.is_integral()) return a.integer() < b.integer();
  const long double x =
      a.is_float() ? static_cast<long double>(a.number()) : static_cast<long double>(a.integer());
  const long double y =
      b.is_float() ? static_cast<long double>(b.number()) : static_cast<long double>(b.integer());
  return x < y;
}

bool SetLikeEqual(const SeqData& a, const SeqData& b) {
  if (a.items.size() != b.items.size()) return false;
  for (const Value& x : a.items) {
    bool found = false;
    for (const Value& y : b.items) {
      if (Equal(x, y)) {
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

}  // namespace

bool Equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return NumEqual(a, b);
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return a.str() == b.str();
    case Kind::kSeq: {
      const SeqData& x = a.seq();
      const SeqData& y = b.seq();
      if (&x == &y) return true;
      const bool x_set = x.kind == SeqKind::kDictKeys || x.kind == SeqKind::kDictItems;
      const bool y_set = y.kind == SeqKind::kDictKeys || y.kind == SeqKind::kDictItems;
      if (x_set || y_set) return x_set && y_set && SetLikeEqual(x, y);
      if (x.kind == SeqKind::kDictValues || y.kind == SeqKind::kDictValues) return false;
      if (x.kind != y.kind) return false;
      if (x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i) {
        if (!Equal(x.items[i], y.items[i])) return false;
      }
      return true;
    }
    case Kind::kDict: {
      const DictData& x = a.dict();
      const DictData& y = b.dict();
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const ptrdiff_t at = y.Find(k);
        if (at < 0 || !Equal(v, y.items[static_cast<size_t>(at)].second)) return false;
      }
      return true;
    }
    case Kind::kCallable: {
      const CallableData& x = a.callable();
      const CallableData& y = b.callable();
      return x.kind == y.kind && x.name == y.name && x.macro == y.macro &&
             x.receiver.heap() == y.receiver.heap();
    }
    default:
      return a.heap() == b.heap();  // identity: namespaces, loops, iterators
  }
}

StatusOr<bool> Less(const Value& a, const Value& b) {
  if (a.is_undefined()) return UndefinedError(a);
  if (b.is_undefined()) return UndefinedError(b);
  if (a.is_number() && b.is_number()) return NumLess(a, b);
  if (a.is_string() && b.is_string()) return a.str() < b.str();
  if (a.is_seq() && b.is_seq() && a.seq_kind() == b.seq_kind() &&
      (a.seq_kind() == SeqKind::kList || a.seq_kind() == SeqKind::kTuple)) {
    const auto& x = a.seq().items;
    const auto& y = b.seq().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!Equal(x[i], y[i])) return Less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  return TypeError(std::string("'<' not supported between instances of '") + TypeName(a) +
                   "' and '" + TypeName(b) + "'");
}

bool Hashable(const Value& v) {
  switch (v.kind()) {
    case Kind::kSeq:
      if (v.seq_kind() != SeqKind::kTuple && v.seq_kind() != SeqKind::kRange) return false;
      for (const Value& i : v.seq().items) {
        if (!Hashable(i)) return false;
      }
      return true;
    case Kind::kDict:
      return false;
    default:
      return true;
  }
}

// ------------------------------------------------------------------------------------------------
// Iteration and length

StatusOr<std::vector<Value>> Iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return std::vector<Value>{};
    case Kind::kString: {
      std::vector<Value> out;
      const std::string& s = v.str();
      size_t i = 0;
      while (i < s.size()) {
        const size_t start = i;
        text::Next(s, &i);
        out.push_back(Value::String(s.substr(start, i - start)));
      }
      return out;
    }
    case Kind::kSeq:
      return v.seq().items;
    case Kind::kDict: {
      std::vector<Value> out;
      for (const auto& kv : v.dict().items) out.push_back(kv.first);
      return out;
    }
    case Kind::kIterator: {
      IteratorData& it = v.iter();
      std::vector<Value> out(
          it.items.begin() + static_cast<ptrdiff_t>(std::min(it.pos, it.items.size())),
          it.items.end());
      it.pos = it.items.size();
      if (it.error) {
        Status e = *it.error;
        it.error.reset();
        return e;
      }
      return out;
    }
    case Kind::kLoop:
      return Unsupported("iterating over a loop object");
    default:
      return TypeError(std::string("'") + TypeName(v) + "' object is not iterable");
  }
}

StatusOr<int64_t> Length(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return 0;
    case Kind::kString:
      return static_cast<int64_t>(text::CountCodePoints(v.str()));
    case Kind::kSeq:
      return static_cast<int64_t>(v.seq().items.size());
    case Kind::kDict:
      return static_cast<int64_t>(v.dict().items.size());
    case Kind::kLoop:
      return static_cast<int64_t>(v.loop().items ? v.loop().items->size() : 0);
    default:
      return TypeError(std::string("object of type '") + TypeName(v) + "' has no len()");
  }
}

// ------------------------------------------------------------------------------------------------
// JSON

template <typename Json>
StatusOr<Value> FromJson(const Json& j, int depth) {
  if (depth > kMaxJsonDepth)
    return Status::InvalidArgument("the context is nested more than 256 levels deep");
  switch (j.type()) {
    case Json::value_t::null:
      return Value::None();
    case Json::value_t::boolean:
      return Value::Bool(j.template get<bool>());
    case Json::value_t::number_integer:
      return Value::Int(j.template get<int64_t>());
    case Json::value_t::number_unsigned: {
      const uint64_t u = j.template get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX))
        return Status::InvalidArgument("unsupported: an integer beyond int64 in the context");
      return Value::Int(static_cast<int64_t>(u));
    }
    case Json::value_t::number_float:
      return Value::Float(j.template get<double>());
    case Json::value_t::string: {
      const auto& s = j.template get_ref<const std::string&>();
      if (text::FindInvalid(s) != std::string::npos)
        return Status::InvalidArgument("a string in the context is not valid UTF-8");
      return Value::String(s);
    }
    case Json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) {
        ASSIGN_OR_RETURN(Value v, FromJson(e, depth + 1));
        items.push_back(std::move(v));
      }
      return Value::List(std::move(items));
    }
    case Json::value_t::object: {
      auto d = std::make_shared<DictData>();
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (text::FindInvalid(it.key()) != std::string::npos)
          return Status::InvalidArgument("a key in the context is not valid UTF-8");
        ASSIGN_OR_RETURN(Value v, FromJson(it.value(), depth + 1));
        d->Set(Value::String(it.key()), std::move(v));
      }
      return Value::MakeDict(std::move(d));
    }
    default:
      return Status::InvalidArgument("unsupported JSON value in the context (binary or discarded)");
  }
}

template StatusOr<Value> FromJson<nlohmann::json>(const nlohmann::json&, int);
template StatusOr<Value> FromJson<nlohmann::ordered_json>(const nlohmann::ordered_json&, int);

namespace {

void AppendJsonString(const std::string& s, bool ensure_ascii, std::string* out) {
  out->push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    const size_t start = i;
    const uint32_t cp = text::Next(s, &i);
    char buf[16];
    switch (cp) {
      case '"':
        *out += "\\\"";
        continue;
      case '\\':
        *out += "\\\\";
        continue;
      case '\n':
        *out += "\\n";
        continue;
      case '\r':
        *out += "\\r";
        continue;
      case '\t':
        *out += "\\t";
        continue;
      case '\b':
        *out += "\\b";
        continue;
      case '\f':
        *out += "\\f";
        continue;
      default:
        break;
    }
    if (cp < 0x20 || (ensure_ascii && cp >= 0x7F)) {
      if (cp >= 0x10000) {
        const uint32_t v = cp - 0x10000;
        std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        std::snprintf(buf, sizeof buf, "\\u%04x", cp);
      }
      *out += buf;
    } else {
      out->append(s, start, i - start);
    }
  }
  out->push_back('"');
}

std::string JsonFloat(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
  return FloatRepr(d);
}

class JsonWriter {
 public:
  JsonWriter(const JsonOptions& o, size_t max_bytes, std::string* out)
      : o_(o), max_(max_bytes), out_(out) {}

  Status Write(const Value& v, int level) {
    if (out_->size() > max_)
      return Status::ResourceExhausted("chat template: tojson output beyond the string size limit");
    switch (v.kind()) {
      case Kind::kNone:
        *out_ += "null";
        return Status::OK();
      case Kind::kBool:
        *out_ += v.boolean() ? "true" : "false";
        return Status::OK();
      case Kind::kInt:
        *out_ += std::to_string(v.integer());
        return Status::OK();
      case Kind::kFloat:
        *out_ += JsonFloat(v.number());
        return Status::OK();
      case Kind::kString:
        AppendJsonString(v.str(), o_.ensure_ascii, out_);
        return Status::OK();
      case Kind::kSeq: {
        const SeqData& s = v.seq();
        if (s.kind != SeqKind::kList && s.kind != SeqKind::kTuple) break;
        if (s.items.empty()) {
          *out_ += "[]";
          return Status::OK();
        }
        *out_ += "[";
        for (size_t i = 0; i < s.items.size(); ++i) {
          if (i > 0) *out_ += o_.item_sep;
          Newline(level + 1);
          RETURN_IF_ERROR(Write(s.items[i], level + 1));
        }
        Newline(level);
        *out_ += "]";
        return Status::OK();
      }
      case Kind::kDict:
        return WriteDict(v.dict(), level);
      default:
        break;
    }
    return TypeError(std::string("Object of type ") + TypeName(v) + " is not JSON serializable");
  }

 private:
  void Newline(int level) {
    if (!o_.has_indent) return;
    out_->push_back('\n');
    for (int i = 0; i < level && out_->size() <= max_; ++i) *out_ += o_.indent;
  }

  Status WriteDict(const DictData& d, int level) {
    if (d.items.empty()) {
      *out_ += "{}";
      return Status::OK();
    }
    std::vector<size_t> order(d.items.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (o_.sort_keys) {
      Status error;
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        if (!error.ok()) return false;
        StatusOr<bool> lt = Less(d.items[a].first, d.items[b].first);
        if (!lt.ok()) {
          error = lt.status();
          return false;
        }
        return *lt;
      });
      RETURN_IF_ERROR(error);
    }
    *out_ += "{";
    bool first = true;
    for (size_t i : order) {
      const Value& k = d.items[i].first;
      std::string key;
      switch (k.kind()) {
        case Kind::kString:
          key = k.str();
          break;
        case Kind::kNone:
          key = "null";
          break;
        case Kind::kBool:
          key = k.boolean() ? "true" : "false";
          break;
        case Kind::kInt:
          key = std::to_string(k.integer());
          break;
        case Kind::kFloat:
          key = JsonFloat(k.number());
          break;
        default:
          return TypeError(std::string("keys must be str, int, float, bool or None, not ") +
                           TypeName(k));
      }
      if (!first) *out_ += o_.item_sep;
      first = false;
      Newline(level + 1);
      AppendJsonString(key, o_.ensure_ascii, out_);
      *out_ += o_.key_sep;
      RETURN_IF_ERROR(Write(d.items[i].second, level + 1));
    }
    Newline(level);
    *out_ += "}";
    return Status::OK();
  }

  const JsonOptions& o_;
  size_t max_;
  std::string* out_;
};

}  // namespace

Status ToJson(const Value& v, const JsonOptions& opts, size_t max_bytes, std::string* out) {
  JsonWriter w(opts, max_bytes, out);
  RETURN_IF_ERROR(w.Write(v, 0));
  if (out->size() > max_bytes)
    return Status::ResourceExhausted("chat template: tojson output beyond the string size limit");
  return Status::OK();
}

}  // namespace blockkv::jinja
