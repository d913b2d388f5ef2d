// Attribute and item access under ImmutableSandboxedEnvironment's rules, slicing, and the methods
// of str, dict, list, tuple and range that templates call (message.content.strip(), tools.items(),
// ...).
//
// The sandbox's two lookups differ in order, and templates notice: `a.b` is Python's getattr first
// (so message.items is dict.items, a method, even if the dict has an "items" key) and the item
// second; `a[b]` the item first and the attribute second. Mutating methods of dict and list are
// hidden behind an Undefined that raises SecurityError when used. What is missing is Undefined,
// with Jinja's message.
//
// Strings index, slice, find and measure in code points, as Python's str does.
#include <algorithm>
#include <cstring>
#include <set>

#include "attention/model/chat_template_internal.h"

namespace blockkv::jinja {

namespace {

const std::set<std::string>& StrMethods() {
  static const std::set<std::string> k = {
      "capitalize",   "casefold",    "center",    "count",      "encode",       "endswith",
      "expandtabs",   "find",        "format",    "format_map", "index",        "isalnum",
      "isalpha",      "isascii",     "isdecimal", "isdigit",    "isidentifier", "islower",
      "isnumeric",    "isprintable", "isspace",   "istitle",    "isupper",      "join",
      "ljust",        "lower",       "lstrip",    "maketrans",  "partition",    "removeprefix",
      "removesuffix", "replace",     "rfind",     "rindex",     "rjust",        "rpartition",
      "rsplit",       "rstrip",      "split",     "splitlines", "startswith",   "strip",
      "swapcase",     "title",       "translate", "upper",      "zfill"};
  return k;
}

Value Method(const Value& receiver, const std::string& name) {
  auto c = std::make_shared<CallableData>();
  c->kind = Builtin::kMethod;
  c->name = name;
  c->receiver = receiver;
  return Value::Heap(Kind::kCallable, std::move(c));
}

Value UnsafeUndefined(const Value& obj, const std::string& name) {
  return Value::Undefined(
      "access to attribute '" + name + "' of '" + TypeName(obj) + "' object is unsafe.", "", name,
      true, /*unsafe=*/true);
}

Value Missing(const Value& obj, const Value& key) {
  if (key.is_string()) return Value::Undefined("", ObjectTypeRepr(obj), key.str());
  std::string r;
  if (!AppendRepr(key, &r).ok()) r = "?";
  return Value::Undefined("", ObjectTypeRepr(obj), r, /*name_is_str=*/false);
}

// Python's getattr(obj, name) under the sandbox: the attribute, nullopt when there is none.
StatusOr<std::optional<Value>> Attribute(const Value& obj, const std::string& name) {
  if (name.size() > 4 && name.compare(0, 2, "__") == 0 &&
      name.compare(name.size() - 2, 2, "__") == 0)
    return std::optional<Value>(UnsafeUndefined(obj, name));
  switch (obj.kind()) {
    case Kind::kString:
      if (StrMethods().count(name)) return std::optional<Value>(Method(obj, name));
      break;
    case Kind::kDict:
      if (name == "keys" || name == "values" || name == "items" || name == "get" || name == "copy")
        return std::optional<Value>(Method(obj, name));
      if (name == "clear" || name == "pop" || name == "popitem" || name == "setdefault" ||
          name == "update")
        return std::optional<Value>(UnsafeUndefined(obj, name));
      if (name == "fromkeys") return Unsupported("dict.fromkeys");
      break;
    case Kind::kSeq:
      switch (obj.seq_kind()) {
        case SeqKind::kList:
          if (name == "append" || name == "extend" || name == "insert" || name == "remove" ||
              name == "reverse" || name == "sort")
            return std::optional<Value>(UnsafeUndefined(obj, name));
          if (name == "copy" || name == "count" || name == "index" || name == "pop" ||
              name == "clear")
            return std::optional<Value>(Method(obj, name));
          break;
        case SeqKind::kTuple:
          if (name == "count" || name == "index") return std::optional<Value>(Method(obj, name));
          break;
        case SeqKind::kRange:
          if (name == "count" || name == "index") return std::optional<Value>(Method(obj, name));
          if (name == "start") return std::optional<Value>(Value::Int(obj.seq().start));
          if (name == "stop") return std::optional<Value>(Value::Int(obj.seq().stop));
          if (name == "step") return std::optional<Value>(Value::Int(obj.seq().step));
          break;
        default:
          if (name == "mapping" || name == "isdisjoint")
            return Unsupported(std::string(TypeName(obj)) + "." + name);
          break;
      }
      break;
    case Kind::kNamespace:
      if (Value* v = obj.ns().Find(name)) return std::optional<Value>(*v);
      break;
    case Kind::kLoop: {
      const LoopData& l = obj.loop();
      const int64_t n = static_cast<int64_t>(l.items->size());
      if (name == "index") return std::optional<Value>(Value::Int(l.index0 + 1));
      if (name == "index0") return std::optional<Value>(Value::Int(l.index0));
      if (name == "revindex") return std::optional<Value>(Value::Int(n - l.index0));
      if (name == "revindex0") return std::optional<Value>(Value::Int(n - l.index0 - 1));
      if (name == "first") return std::optional<Value>(Value::Bool(l.index0 == 0));
      if (name == "last") return std::optional<Value>(Value::Bool(l.index0 == n - 1));
      if (name == "length") return std::optional<Value>(Value::Int(n));
      if (name == "depth") return std::optional<Value>(Value::Int(l.depth0 + 1));
      if (name == "depth0") return std::optional<Value>(Value::Int(l.depth0));
      if (name == "previtem") {
        if (l.index0 == 0)
          return std::optional<Value>(Value::Undefined("there is no previous item"));
        return std::optional<Value>((*l.items)[static_cast<size_t>(l.index0 - 1)]);
      }
      if (name == "nextitem") {
        if (l.index0 + 1 >= n)
          return std::optional<Value>(Value::Undefined("there is no next item"));
        return std::optional<Value>((*l.items)[static_cast<size_t>(l.index0 + 1)]);
      }
      if (name == "cycle" || name == "changed") {
        auto c = std::make_shared<CallableData>();
        c->kind = name == "cycle" ? Builtin::kLoopCycle : Builtin::kLoopChanged;
        c->name = name;
        c->receiver = obj;
        return std::optional<Value>(Value::Heap(Kind::kCallable, std::move(c)));
      }
      if (!name.empty() && name[0] == '_') return std::optional<Value>(UnsafeUndefined(obj, name));
      break;
    }
    case Kind::kBool:
    case Kind::kInt:
    case Kind::kFloat: {
      static const std::set<std::string> k = {
          "as_integer_ratio", "bit_count", "bit_length", "conjugate", "denominator",
          "from_bytes",       "imag",      "numerator",  "real",      "to_bytes",
          "fromhex",          "hex",       "is_integer"};
      if (k.count(name))
        return Unsupported(std::string("the attribute '") + name + "' of " + TypeName(obj));
      break;
    }
    case Kind::kCallable:
      if (obj.callable().kind == Builtin::kMacro) return Unsupported("attributes of a macro");
      break;
    case Kind::kIterator: {
      static const std::set<std::string> k = {"close",        "gi_code", "gi_frame", "gi_running",
                                              "gi_yieldfrom", "send",    "throw"};
      if (k.count(name))
        return Unsupported(std::string("the attribute '") + name + "' of a generator");
      break;
    }
    default:
      break;
  }
  return std::optional<Value>();
}

// Python's obj[key]: the item, nullopt on TypeError / LookupError.
std::optional<Value> Item(const Value& obj, const Value& key) {
  switch (obj.kind()) {
    case Kind::kDict: {
      if (!Hashable(key)) return std::nullopt;
      const ptrdiff_t at = obj.dict().Find(key);
      if (at < 0) return std::nullopt;
      return obj.dict().items[static_cast<size_t>(at)].second;
    }
    case Kind::kSeq: {
      const SeqData& s = obj.seq();
      if (s.kind == SeqKind::kDictKeys || s.kind == SeqKind::kDictValues ||
          s.kind == SeqKind::kDictItems)
        return std::nullopt;
      if (!key.is_integral()) return std::nullopt;
      int64_t i = key.integer();
      const int64_t n = static_cast<int64_t>(s.items.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return std::nullopt;
      return s.items[static_cast<size_t>(i)];
    }
    case Kind::kString: {
      if (!key.is_integral()) return std::nullopt;
      const std::string& str = obj.str();
      int64_t i = key.integer();
      const int64_t n = static_cast<int64_t>(text::CountCodePoints(str));
      if (i < 0) i += n;
      if (i < 0 || i >= n) return std::nullopt;
      const size_t at = text::OffsetOfCodePoint(str, static_cast<size_t>(i));
      size_t end = at;
      text::Next(str, &end);
      return Value::String(str.substr(at, end - at));
    }
    default:
      return std::nullopt;
  }
}

}  // namespace

StatusOr<Value> GetAttr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) return UndefinedError(obj);
  ASSIGN_OR_RETURN(std::optional<Value> attr, Attribute(obj, name));
  if (attr) return *attr;
  const Value key = Value::String(name);
  if (std::optional<Value> item = Item(obj, key)) return *item;
  return Missing(obj, key);
}

StatusOr<Value> GetItem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) return UndefinedError(obj);
  if (std::optional<Value> item = Item(obj, key)) return *item;
  if (key.is_string()) {
    ASSIGN_OR_RETURN(std::optional<Value> attr, Attribute(obj, key.str()));
    if (attr) return *attr;
  }
  return Missing(obj, key);
}

StatusOr<Value> GetAttrOnly(const Value& obj, const std::string& name) {
  ASSIGN_OR_RETURN(std::optional<Value> attr, Attribute(obj, name));
  if (attr) return *attr;
  return Missing(obj, Value::String(name));
}

namespace {

// PySlice_AdjustIndices over a sequence of n items: the indices a slice selects.
struct SliceIndices {
  int64_t start, stop, step, length;
};

SliceIndices AdjustSlice(int64_t n, const Value& start, const Value& stop, int64_t step) {
  auto clamp = [&](const Value& v, bool is_start) -> int64_t {
    if (v.is_none()) return step < 0 ? (is_start ? n - 1 : -1) : (is_start ? 0 : n);
    __int128 i = v.integer();
    if (i < 0) {
      i += n;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= n) {
      i = step < 0 ? n - 1 : n;
    }
    return static_cast<int64_t>(i);
  };
  SliceIndices s;
  s.step = step;
  s.start = clamp(start, true);
  s.stop = clamp(stop, false);
  if (step > 0) {
    s.length = s.stop > s.start ? (s.stop - s.start + step - 1) / step : 0;
  } else {
    s.length = s.start > s.stop ? (s.start - s.stop - step - 1) / (-step) : 0;
  }
  return s;
}

}  // namespace

StatusOr<Value> Slice(Evaluator& ev, const Value& obj, const Value& start, const Value& stop,
                      const Value& step) {
  // Jinja compiles slices to plain Python subscripts, bypassing the sandbox's getitem: no Undefined
  // for what cannot be sliced, but Python's errors. Only an output expression folded at compile
  // time goes through getitem, whose TypeErrors give Undefined.
  if (obj.is_undefined()) return UndefinedError(obj);
  auto type_error = [&](const std::string& msg) -> StatusOr<Value> {
    if (!ev.folding()) return TypeError(msg);
    std::string name = "slice(";
    for (const Value* v : {&start, &stop, &step}) {
      if (v != &start) name += ", ";
      RETURN_IF_ERROR(AppendRepr(*v, &name));
    }
    return Value::Undefined("", ObjectTypeRepr(obj), name + ")", /*name_is_str=*/false);
  };
  if (obj.is_dict()) return type_error("unhashable type: 'slice'");
  const bool sliceable = obj.is_string() || (obj.is_seq() && (obj.seq_kind() == SeqKind::kList ||
                                                              obj.seq_kind() == SeqKind::kTuple ||
                                                              obj.seq_kind() == SeqKind::kRange));
  if (!sliceable)
    return type_error(std::string("'") + TypeName(obj) + "' object is not subscriptable");
  for (const Value* v : {&start, &stop, &step}) {
    if (!v->is_none() && !v->is_integral())
      return type_error("slice indices must be integers or None or have an __index__ method");
  }
  const int64_t st = step.is_none() ? 1 : step.integer();
  if (st == 0) return ValueError("slice step cannot be zero");
  if (st == INT64_MIN) return Unsupported("a slice step of -2**63");
  if (obj.is_string()) {
    const std::vector<uint32_t> cps = text::Decode(obj.str());
    const SliceIndices s = AdjustSlice(static_cast<int64_t>(cps.size()), start, stop, st);
    std::vector<uint32_t> out;
    for (int64_t k = 0, i = s.start; k < s.length; ++k, i += st)
      out.push_back(cps[static_cast<size_t>(i)]);
    RETURN_IF_ERROR(ev.Charge(cps.size() / 16));
    return Value::String(text::Encode(out));
  }
  if (obj.is_seq() && (obj.seq_kind() == SeqKind::kList || obj.seq_kind() == SeqKind::kTuple ||
                       obj.seq_kind() == SeqKind::kRange)) {
    const SeqData& d = obj.seq();
    const SliceIndices s = AdjustSlice(static_cast<int64_t>(d.items.size()), start, stop, st);
    RETURN_IF_ERROR(ev.Charge(static_cast<uint64_t>(s.length) / 16));
    if (d.kind == SeqKind::kRange) {
      return Value::Range(d.start + s.start * d.step, d.start + s.stop * d.step, d.step * st);
    }
    std::vector<Value> out;
    out.reserve(static_cast<size_t>(s.length));
    for (int64_t k = 0, i = s.start; k < s.length; ++k, i += st)
      out.push_back(d.items[static_cast<size_t>(i)]);
    return Value::List(std::move(out), d.kind);
  }
  return Status::Internal("unsliceable value");
}

// ------------------------------------------------------------------------------------------------
// Arguments

Status BindArgs(const char* function, CallArgs& a, std::initializer_list<const char*> names,
                size_t required, std::vector<std::optional<Value>>* out) {
  out->assign(names.size(), std::nullopt);
  if (a.args.size() > names.size())
    return TypeError(std::string(function) + "() takes at most " + std::to_string(names.size()) +
                     " arguments (" + std::to_string(a.args.size()) + " given)");
  for (size_t i = 0; i < a.args.size(); ++i) (*out)[i] = std::move(a.args[i]);
  for (auto& [k, v] : a.kwargs) {
    size_t i = 0;
    for (const char* n : names) {
      if (k == n) break;
      ++i;
    }
    if (i == names.size())
      return TypeError(std::string(function) + "() got an unexpected keyword argument '" + k + "'");
    if ((*out)[i])
      return TypeError(std::string(function) + "() got multiple values for argument '" + k + "'");
    (*out)[i] = std::move(v);
  }
  for (size_t i = 0; i < required; ++i) {
    if (!(*out)[i])
      return TypeError(std::string(function) + "() missing required argument '" +
                       *(names.begin() + i) + "'");
  }
  return Status::OK();
}

namespace {

StatusOr<Value> StrMethod(Evaluator& ev, const Value& self, const std::string& name, CallArgs a) {
  const std::string& s = self.str();
  std::vector<std::optional<Value>> p;
  auto bind = [&](std::initializer_list<const char*> names, size_t required) {
    return BindArgs(name.c_str(), a, names, required, &p);
  };
  auto no_kwargs = [&]() -> Status {
    if (!a.kwargs.empty()) return TypeError(name + "() takes no keyword arguments");
    return Status::OK();
  };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    RETURN_IF_ERROR(no_kwargs());
    RETURN_IF_ERROR(bind({"chars"}, 0));
    const std::string* chars = nullptr;
    if (p[0] && !p[0]->is_none()) {
      if (!p[0]->is_string()) return TypeError(name + " arg must be None or str");
      chars = &p[0]->str();
    }
    return Value::String(StripChars(s, chars, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    RETURN_IF_ERROR(bind({"sep", "maxsplit"}, 0));
    return Split(ev, s, p[0], p[1], name == "rsplit");
  }
  if (name == "splitlines") {
    RETURN_IF_ERROR(bind({"keepends"}, 0));
    std::vector<Value> items;
    for (auto& line : SplitLines(s, p[0] && Truthy(*p[0])))
      items.push_back(Value::String(std::move(line)));
    return Value::List(std::move(items));
  }
  if (name == "startswith" || name == "endswith") {
    RETURN_IF_ERROR(no_kwargs());
    RETURN_IF_ERROR(bind({"prefix", "start", "end"}, 1));
    size_t b, e;
    int64_t cp0;
    RETURN_IF_ERROR(ByteRange(s, p[1], p[2], &b, &e, &cp0));
    std::vector<Value> candidates;
    if (p[0]->is_string()) {
      candidates.push_back(*p[0]);
    } else if (p[0]->is_seq() && p[0]->seq_kind() == SeqKind::kTuple) {
      candidates = p[0]->seq().items;
    } else {
      return TypeError(name + " first arg must be str or a tuple of str, not " + TypeName(*p[0]));
    }
    for (const Value& c : candidates) {
      if (!c.is_string())
        return TypeError(std::string("tuple for ") + name + " must only contain str, not " +
                         TypeName(c));
      if (b == std::string::npos) continue;
      const std::string_view region = std::string_view(s).substr(b, e - b);
      const std::string& x = c.str();
      if (x.size() > region.size()) continue;
      if (name == "startswith" ? region.compare(0, x.size(), x) == 0
                               : region.compare(region.size() - x.size(), x.size(), x) == 0)
        return Value::Bool(true);
    }
    return Value::Bool(false);
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    RETURN_IF_ERROR(bind({}, 0));
    if (name == "upper") return Value::String(text::Upper(s));
    if (name == "lower") return Value::String(text::Lower(s));
    if (name == "title") return Value::String(text::Title(s));
    return Value::String(text::Capitalize(s));
  }
  if (name == "replace") {
    RETURN_IF_ERROR(no_kwargs());
    RETURN_IF_ERROR(bind({"old", "new", "count"}, 2));
    RETURN_IF_ERROR(ExpectStr("replace() argument 1", *p[0]));
    RETURN_IF_ERROR(ExpectStr("replace() argument 2", *p[1]));
    int64_t count = -1;
    if (p[2]) {
      if (!p[2]->is_integral())
        return TypeError("'" + std::string(TypeName(*p[2])) +
                         "' object cannot be interpreted as an integer");
      count = p[2]->integer();
    }
    const size_t worst = s.size() + (text::CountCodePoints(s) + 1) * p[1]->str().size();
    if (worst > ev.limits().max_string_bytes)
      RETURN_IF_ERROR(ev.CheckString(Replace(s, p[0]->str(), "", count).size()));
    std::string r = Replace(s, p[0]->str(), p[1]->str(), count);
    RETURN_IF_ERROR(ev.CheckString(r.size()));
    return Value::String(std::move(r));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    RETURN_IF_ERROR(no_kwargs());
    RETURN_IF_ERROR(bind({"sub", "start", "end"}, 1));
    RETURN_IF_ERROR(ExpectStr("must be str", *p[0]));
    size_t b, e;
    int64_t cp0;
    RETURN_IF_ERROR(ByteRange(s, p[1], p[2], &b, &e, &cp0));
    const std::string& sub = p[0]->str();
    if (name == "count") {
      if (b == std::string::npos) return Value::Int(0);
      const std::string_view region = std::string_view(s).substr(b, e - b);
      if (sub.empty()) return Value::Int(static_cast<int64_t>(text::CountCodePoints(region)) + 1);
      int64_t n = 0;
      for (size_t at = region.find(sub); at != std::string_view::npos;
           at = region.find(sub, at + sub.size()))
        ++n;
      return Value::Int(n);
    }
    size_t at = std::string::npos;
    if (b != std::string::npos) {
      const std::string_view region = std::string_view(s).substr(b, e - b);
      at = name[0] == 'r' ? region.rfind(sub) : region.find(sub);
    }
    if (at == std::string::npos) {
      if (name == "index" || name == "rindex") return ValueError("substring not found");
      return Value::Int(-1);
    }
    return Value::Int(
        cp0 + static_cast<int64_t>(text::CountCodePoints(std::string_view(s).substr(b, at))));
  }
  if (name == "join") {
    RETURN_IF_ERROR(no_kwargs());
    RETURN_IF_ERROR(bind({"iterable"}, 1));
    ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(*p[0]));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string())
        return TypeError("sequence item " + std::to_string(i) + ": expected str instance, " +
                         TypeName(items[i]) + " found");
      if (i > 0) out += s;
      out += items[i].str();
      RETURN_IF_ERROR(ev.CheckString(out.size()));
    }
    return Value::String(std::move(out));
  }
  if (name == "format") return StrFormat(ev, s, a);
  if (name == "center" || name == "ljust" || name == "rjust") {
    RETURN_IF_ERROR(no_kwargs());
    RETURN_IF_ERROR(bind({"width", "fillchar"}, 1));
    return Pad(ev, s, p[0], p[1], name[0]);
  }
  if (name == "zfill") {
    RETURN_IF_ERROR(no_kwargs());
    RETURN_IF_ERROR(bind({"width"}, 1));
    if (!p[0]->is_integral())
      return TypeError("'" + std::string(TypeName(*p[0])) +
                       "' object cannot be interpreted as an integer");
    const int64_t n = static_cast<int64_t>(text::CountCodePoints(s));
    if (p[0]->integer() <= n) return Value::String(s);
    RETURN_IF_ERROR(ev.CheckString(static_cast<size_t>(p[0]->integer())));
    const size_t sign = !s.empty() && (s[0] == '+' || s[0] == '-') ? 1 : 0;
    return Value::String(s.substr(0, sign) +
                         std::string(static_cast<size_t>(p[0]->integer() - n), '0') +
                         s.substr(sign));
  }
  if (name == "partition" || name == "rpartition") {
    RETURN_IF_ERROR(no_kwargs());
    RETURN_IF_ERROR(bind({"sep"}, 1));
    RETURN_IF_ERROR(ExpectStr("must be str", *p[0]));
    const std::string& sep = p[0]->str();
    if (sep.empty()) return ValueError("empty separator");
    const size_t at = name == "partition" ? s.find(sep) : s.rfind(sep);
    std::vector<Value> parts;
    if (at == std::string::npos) {
      if (name == "partition") {
        parts = {Value::String(s), Value::String(""), Value::String("")};
      } else {
        parts = {Value::String(""), Value::String(""), Value::String(s)};
      }
    } else {
      parts = {Value::String(s.substr(0, at)), Value::String(sep),
               Value::String(s.substr(at + sep.size()))};
    }
    return Value::List(std::move(parts), SeqKind::kTuple);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    RETURN_IF_ERROR(no_kwargs());
    RETURN_IF_ERROR(bind({"affix"}, 1));
    RETURN_IF_ERROR(ExpectStr(
        name == "removeprefix" ? "removeprefix() argument" : "removesuffix() argument", *p[0]));
    const std::string& x = p[0]->str();
    if (name == "removeprefix" && s.compare(0, x.size(), x) == 0)
      return Value::String(s.substr(x.size()));
    if (name == "removesuffix" && !x.empty() && s.size() >= x.size() &&
        s.compare(s.size() - x.size(), x.size(), x) == 0)
      return Value::String(s.substr(0, s.size() - x.size()));
    return Value::String(s);
  }
  if (name == "isspace" || name == "isascii" || name == "isprintable") {
    RETURN_IF_ERROR(bind({}, 0));
    if (name == "isspace") return Value::Bool(AllCps(s, text::IsSpace));
    if (name == "isprintable") return Value::Bool(s.empty() || AllCps(s, text::IsPrintable));
    return Value::Bool(
        std::all_of(s.begin(), s.end(), [](char c) { return static_cast<uint8_t>(c) < 0x80; }));
  }
  if (name == "isdigit" || name == "isdecimal" || name == "isnumeric" || name == "isalpha" ||
      name == "isalnum" || name == "isupper" || name == "islower") {
    RETURN_IF_ERROR(bind({}, 0));
    if (std::any_of(s.begin(), s.end(), [](char c) { return static_cast<uint8_t>(c) >= 0x80; }))
      return Unsupported("str." + name + "() on non-ASCII text");
    auto digit = [](uint32_t c) { return c >= '0' && c <= '9'; };
    auto alpha = [](uint32_t c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; };
    if (name == "isalpha") return Value::Bool(AllCps(s, +alpha));
    if (name == "isalnum")
      return Value::Bool(AllCps(
          s, +[](uint32_t c) {
            return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
          }));
    if (name == "isupper" || name == "islower") {
      bool cased = false;
      for (char c : s) {
        if (c >= 'a' && c <= 'z') {
          if (name == "isupper") return Value::Bool(false);
          cased = true;
        } else if (c >= 'A' && c <= 'Z') {
          if (name == "islower") return Value::Bool(false);
          cased = true;
        }
      }
      return Value::Bool(cased);
    }
    return Value::Bool(AllCps(s, +digit));
  }
  return Unsupported("str." + name + "()");
}

StatusOr<Value> DictMethod(const Value& self, const std::string& name, CallArgs a) {
  const DictData& d = self.dict();
  if (!a.kwargs.empty()) return TypeError(name + "() takes no keyword arguments");
  if (name == "get") {
    if (a.args.empty() || a.args.size() > 2)
      return TypeError("get expected at most 2 arguments, got " + std::to_string(a.args.size()));
    if (!Hashable(a.args[0]))
      return TypeError(std::string("unhashable type: '") + TypeName(a.args[0]) + "'");
    const ptrdiff_t at = d.Find(a.args[0]);
    if (at >= 0) return d.items[static_cast<size_t>(at)].second;
    return a.args.size() == 2 ? a.args[1] : Value::None();
  }
  if (!a.args.empty())
    return TypeError(name + "() takes no arguments (" + std::to_string(a.args.size()) + " given)");
  if (name == "copy") return self;
  std::vector<Value> items;
  items.reserve(d.items.size());
  for (const auto& [k, v] : d.items) {
    if (name == "keys") {
      items.push_back(k);
    } else if (name == "values") {
      items.push_back(v);
    } else {
      items.push_back(Value::List({k, v}, SeqKind::kTuple));
    }
  }
  const SeqKind kind = name == "keys"     ? SeqKind::kDictKeys
                       : name == "values" ? SeqKind::kDictValues
                                          : SeqKind::kDictItems;
  return Value::List(std::move(items), kind);
}

StatusOr<Value> SeqMethod(const Value& self, const std::string& name, CallArgs a) {
  const SeqData& d = self.seq();
  if (name == "pop" || name == "clear")
    return Unsupported("list." + name +
                       "() (it changes the list, which the sandbox allows but blockkv does not)");
  if (!a.kwargs.empty()) return TypeError(name + "() takes no keyword arguments");
  if (name == "copy") {
    if (!a.args.empty()) return TypeError("copy() takes no arguments");
    return Value::List(d.items, SeqKind::kList);
  }
  if (name == "count") {
    if (a.args.size() != 1) return TypeError("count() takes exactly one argument");
    int64_t n = 0;
    for (const Value& v : d.items) n += Equal(v, a.args[0]) ? 1 : 0;
    return Value::Int(n);
  }
  // index(x[, start[, stop]])
  if (a.args.empty() || a.args.size() > 3) return TypeError("index expected at least 1 argument");
  const int64_t n = static_cast<int64_t>(d.items.size());
  int64_t lo = 0, hi = n;
  for (size_t k = 1; k < a.args.size(); ++k) {
    if (!a.args[k].is_integral())
      return TypeError("slice indices must be integers or have an __index__ method");
    int64_t v = a.args[k].integer();
    if (v < 0) v = std::max<int64_t>(0, v + n);
    (k == 1 ? lo : hi) = std::min(v, n);
  }
  for (int64_t i = lo; i < hi; ++i) {
    if (Equal(d.items[static_cast<size_t>(i)], a.args[0])) return Value::Int(i);
  }
  std::string r;
  RETURN_IF_ERROR(AppendRepr(a.args[0], &r));
  return ValueError(d.kind == SeqKind::kList ? r + " is not in list"
                                             : "tuple.index(x): x not in tuple");
}

}  // namespace

StatusOr<Value> CallMethod(Evaluator& ev, const CallableData& m, CallArgs a) {
  const Value& self = m.receiver;
  switch (self.kind()) {
    case Kind::kString:
      return StrMethod(ev, self, m.name, std::move(a));
    case Kind::kDict:
      return DictMethod(self, m.name, std::move(a));
    case Kind::kSeq:
      return SeqMethod(self, m.name, std::move(a));
    default:
      return Unsupported("method " + m.name);
  }
}

}  // namespace blockkv::jinja
