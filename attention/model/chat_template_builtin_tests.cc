// Jinja2's tests (jinja2/tests.py, 3.1): what `x is defined`, `x is string`, `x is eq 3` and
// select('odd') call. (The unit tests of the interpreter are tests/chat_template_test.cc.)
//
// They follow Python's definitions, which templates rely on in surprising ways: a bool is a number
// but not an integer; an Undefined is a sequence and callable (it has __len__, __getitem__ and
// __call__, which only fail when used); `sameas` is identity, known only for None, True, False and
// shared objects here.
#include "attention/model/chat_template_internal.h"

namespace blockkv::jinja {

namespace {

using TestFn = StatusOr<bool> (*)(Evaluator&, const Value&, CallArgs&);

Status TestArgs(const char* name, CallArgs& a, size_t n, std::vector<std::optional<Value>>* p) {
  static const std::initializer_list<const char*> kNone = {};
  static const std::initializer_list<const char*> kOne = {"other"};
  return BindArgs(name, a, n == 0 ? kNone : kOne, n, p);
}

#define SIMPLE_TEST(fn, name, expr)                            \
  StatusOr<bool> fn(Evaluator&, const Value& v, CallArgs& a) { \
    std::vector<std::optional<Value>> p;                       \
    RETURN_IF_ERROR(TestArgs(name, a, 0, &p));                 \
    return (expr);                                             \
  }

SIMPLE_TEST(TDefined, "defined", !v.is_undefined())
SIMPLE_TEST(TUndefined, "undefined", v.is_undefined())
SIMPLE_TEST(TNone, "none", v.is_none())
SIMPLE_TEST(TBoolean, "boolean", v.is_bool())
SIMPLE_TEST(TFalse, "false", v.is_bool() && !v.boolean())
SIMPLE_TEST(TTrue, "true", v.is_bool() && v.boolean())
SIMPLE_TEST(TInteger, "integer", v.is_int())
SIMPLE_TEST(TFloat, "float", v.is_float())
SIMPLE_TEST(TString, "string", v.is_string())
SIMPLE_TEST(TMapping, "mapping", v.is_dict())
SIMPLE_TEST(TNumber, "number", v.is_number())
SIMPLE_TEST(TEscaped, "escaped", false)
// Undefined has __len__ and __getitem__ (which raise only when called), so it is a sequence.
SIMPLE_TEST(TSequence, "sequence",
            v.is_undefined() || v.is_string() || v.is_dict() || v.kind() == Kind::kLoop ||
                (v.is_seq() && (v.seq_kind() == SeqKind::kList || v.seq_kind() == SeqKind::kTuple ||
                                v.seq_kind() == SeqKind::kRange)))
SIMPLE_TEST(TIterable, "iterable",
            v.is_undefined() || v.is_string() || v.is_seq() || v.is_dict() ||
                v.kind() == Kind::kIterator || v.kind() == Kind::kLoop)
SIMPLE_TEST(TCallable, "callable", v.is_undefined() || v.kind() == Kind::kCallable)

StatusOr<bool> ModTest(Evaluator& ev, const Value& v, const Value& d, const Value& want) {
  ASSIGN_OR_RETURN(Value r, BinaryOp(ev, BinOp::kMod, v, d));
  return Equal(r, want);
}

StatusOr<bool> TOdd(Evaluator& ev, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(TestArgs("odd", a, 0, &p));
  return ModTest(ev, v, Value::Int(2), Value::Int(1));
}

StatusOr<bool> TEven(Evaluator& ev, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(TestArgs("even", a, 0, &p));
  return ModTest(ev, v, Value::Int(2), Value::Int(0));
}

StatusOr<bool> TDivisibleBy(Evaluator& ev, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("divisibleby", a, {"num"}, 1, &p));
  return ModTest(ev, v, *p[0], Value::Int(0));
}

StatusOr<bool> CaseTest(const Value& v, bool upper) {
  std::string s;
  RETURN_IF_ERROR(AppendStr(v, &s));
  bool cased = false;
  for (char c : s) {
    if (static_cast<uint8_t>(c) >= 0x80)
      return Unsupported(std::string(upper ? "isupper" : "islower") + " on non-ASCII text");
    if (c >= 'a' && c <= 'z') {
      if (upper) return false;
      cased = true;
    } else if (c >= 'A' && c <= 'Z') {
      if (!upper) return false;
      cased = true;
    }
  }
  return cased;
}

StatusOr<bool> TLower(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(TestArgs("lower", a, 0, &p));
  return CaseTest(v, false);
}

StatusOr<bool> TUpper(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(TestArgs("upper", a, 0, &p));
  return CaseTest(v, true);
}

StatusOr<bool> TSameAs(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(TestArgs("sameas", a, 1, &p));
  const Value& o = *p[0];
  // Identity is knowable for the singletons and for shared objects; Python's small-int cache makes
  // -5..256 identical too. Strings, floats and other ints depend on CPython's interning: refused.
  if (v.is_none() || v.is_bool() || o.is_none() || o.is_bool())
    return v.kind() == o.kind() && (!v.is_bool() || v.boolean() == o.boolean());
  if (v.is_int() && o.is_int()) {
    if (v.integer() != o.integer()) return false;
    if (v.integer() >= -5 && v.integer() <= 256) return true;
    return Unsupported("'sameas' on large integers");
  }
  if (v.is_string() || v.is_float() || v.is_int() || o.is_string() || o.is_float() || o.is_int()) {
    if (v.kind() != o.kind()) return false;
    return Unsupported("'sameas' on strings and floats");
  }
  return v.heap() != nullptr && v.heap() == o.heap();
}

StatusOr<bool> TIn(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(BindArgs("in", a, {"seq"}, 1, &p));
  return Contains(*p[0], v);
}

template <CmpOp op>
StatusOr<bool> TCompare(Evaluator&, const Value& v, CallArgs& a) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(TestArgs("compare", a, 1, &p));
  return Compare(op, v, *p[0]);
}

StatusOr<bool> TFilterOrTest(const Value& v, CallArgs& a, bool filter) {
  std::vector<std::optional<Value>> p;
  RETURN_IF_ERROR(TestArgs(filter ? "filter" : "test", a, 0, &p));
  if (!Hashable(v)) return TypeError(std::string("unhashable type: '") + TypeName(v) + "'");
  if (!v.is_string()) return false;
  bool supported;
  return (filter ? FindFilter(v.str(), &supported) : FindTest(v.str(), &supported)) >= 0;
}
StatusOr<bool> TFilter(Evaluator&, const Value& v, CallArgs& a) {
  return TFilterOrTest(v, a, true);
}
StatusOr<bool> TTest(Evaluator&, const Value& v, CallArgs& a) { return TFilterOrTest(v, a, false); }

#undef SIMPLE_TEST

struct TestEntry {
  const char* name;
  TestFn fn;
};

const TestEntry kTests[] = {
    {"odd", TOdd},
    {"even", TEven},
    {"divisibleby", TDivisibleBy},
    {"defined", TDefined},
    {"undefined", TUndefined},
    {"filter", TFilter},
    {"test", TTest},
    {"none", TNone},
    {"boolean", TBoolean},
    {"false", TFalse},
    {"true", TTrue},
    {"integer", TInteger},
    {"float", TFloat},
    {"lower", TLower},
    {"upper", TUpper},
    {"string", TString},
    {"mapping", TMapping},
    {"number", TNumber},
    {"sequence", TSequence},
    {"iterable", TIterable},
    {"callable", TCallable},
    {"sameas", TSameAs},
    {"escaped", TEscaped},
    {"in", TIn},
    {"==", TCompare<CmpOp::kEq>},
    {"eq", TCompare<CmpOp::kEq>},
    {"equalto", TCompare<CmpOp::kEq>},
    {"!=", TCompare<CmpOp::kNe>},
    {"ne", TCompare<CmpOp::kNe>},
    {">", TCompare<CmpOp::kGt>},
    {"gt", TCompare<CmpOp::kGt>},
    {"greaterthan", TCompare<CmpOp::kGt>},
    {"ge", TCompare<CmpOp::kGe>},
    {">=", TCompare<CmpOp::kGe>},
    {"<", TCompare<CmpOp::kLt>},
    {"lt", TCompare<CmpOp::kLt>},
    {"lessthan", TCompare<CmpOp::kLt>},
    {"<=", TCompare<CmpOp::kLe>},
    {"le", TCompare<CmpOp::kLe>},
};

}  // namespace

int FindTest(std::string_view name, bool* supported) {
  for (size_t i = 0; i < std::size(kTests); ++i) {
    if (name == kTests[i].name) {
      *supported = true;
      return static_cast<int>(i);
    }
  }
  *supported = false;
  return -1;
}

StatusOr<bool> CallTest(Evaluator& ev, int index, const Value& operand, CallArgs args) {
  RETURN_IF_ERROR(ev.Charge());
  return kTests[index].fn(ev, operand, args);
}

}  // namespace blockkv::jinja
