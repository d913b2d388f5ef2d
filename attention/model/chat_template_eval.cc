// The chat template evaluator: runs the syntax tree the way the Python code Jinja2 compiles it to
// runs.
//
// Scoping follows Jinja's compiler (jinja2/compiler.py, idtracking.py), which is easy to get wrong:
//  - `if` has no scope: a set inside it is visible after it;
//  - each loop iteration starts from a fresh scope over the enclosing one, so a set inside a loop
//    neither survives into the next iteration nor leaks out of the loop (namespace() exists for
//    that); the loop's `else` body, set blocks, filter blocks, with blocks and macro calls get
//    scopes too;
//  - a macro sees the scope it was defined in as it is when the macro is called (Python closures);
//  - the for-else body runs when no iteration reached the end of the body: a `break` or `continue`
//    in every iteration also runs it (Jinja sets its "iterated" flag at the end of the body).
//
// Runtime errors name the position of the operation that failed; the first one ends the render.
#include <sys/time.h>

#include <cmath>
#include <cstring>
#include <ctime>

#include "attention/model/chat_template_internal.h"

namespace blockkv::jinja {

namespace {

constexpr int kMaxNesting = 512;       // of lists and dicts a template may store in a variable
constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE

Status Impossible() { return Status::NotSupported("not a constant"); }

bool IsLocated(const Status& s) { return s.message().rfind("chat template line ", 0) == 0; }

Status At(const SourcePos& pos, const Status& s) {
  if (s.ok() || IsLocated(s)) return s;
  if (s.IsResourceExhausted()) return Status::ResourceExhausted(LocatedMessage(pos, s.message()));
  return Status::InvalidArgument(LocatedMessage(pos, s.message()));
}

#define LOCATED(pos, expr)              \
  do {                                  \
    ::blockkv::Status _s = (expr);      \
    if (!_s.ok()) return At((pos), _s); \
  } while (0)

#define ASSIGN_OR_LOCATED(lhs, pos, expr) \
  ASSIGN_OR_LOCATED_IMPL(BLOCKKV_CONCAT(_located_, __COUNTER__), lhs, pos, expr)
#define ASSIGN_OR_LOCATED_IMPL(tmp, lhs, pos, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return At((pos), tmp.status());    \
  lhs = std::move(tmp).value()

Status OpTypeError(const char* op, const Value& a, const Value& b) {
  return TypeError(std::string("unsupported operand type(s) for ") + op + ": '" + TypeName(a) +
                   "' and '" + TypeName(b) + "'");
}

Status Overflow() {
  return Status::InvalidArgument("unsupported: integer overflow beyond 64 bits");
}

// CPython's float_divmod.
void FloatDivMod(double vx, double wx, double* floordiv, double* mod) {
  double m = std::fmod(vx, wx);
  double div = (vx - m) / wx;
  if (m != 0.0) {
    if ((wx < 0) != (m < 0)) {
      m += wx;
      div -= 1.0;
    }
  } else {
    m = std::copysign(0.0, wx);
  }
  double fd;
  if (div != 0.0) {
    fd = std::floor(div);
    if (div - fd > 0.5) fd += 1.0;
  } else {
    fd = std::copysign(0.0, vx / wx);
  }
  *floordiv = fd;
  *mod = m;
}

StatusOr<Value> FloatPow(double x, double y) {
  if (x == 0.0 && y < 0.0)
    return Status::InvalidArgument("ZeroDivisionError: 0.0 cannot be raised to a negative power");
  if (x < 0.0 && std::isfinite(x) && std::isfinite(y) && y != std::floor(y))
    return Unsupported(
        "a negative number raised to a fractional power (Python gives a complex number)");
  const double r = std::pow(x, y);
  if (std::isinf(r) && std::isfinite(x) && std::isfinite(y))
    return Status::InvalidArgument("OverflowError: (34, 'Numerical result out of range')");
  return Value::Float(r);
}

StatusOr<Value> Repeat(Evaluator& ev, const Value& seq, int64_t n) {
  if (n <= 0) return seq.is_string() ? Value::String("") : Value::List({}, seq.seq_kind());
  if (seq.is_string()) {
    const std::string& s = seq.str();
    if (!s.empty() && static_cast<uint64_t>(n) > ev.limits().max_string_bytes / s.size() + 1)
      return ev.CheckString(ev.limits().max_string_bytes + 1);
    RETURN_IF_ERROR(ev.CheckString(s.size() * static_cast<size_t>(n)));
    std::string out;
    out.reserve(s.size() * static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out += s;
    return Value::String(std::move(out));
  }
  const auto& items = seq.seq().items;
  if (!items.empty() && static_cast<uint64_t>(n) > ev.limits().max_list_items / items.size() + 1)
    return ev.CheckList(ev.limits().max_list_items + 1);
  RETURN_IF_ERROR(ev.CheckList(items.size() * static_cast<size_t>(n)));
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::List(std::move(out), seq.seq_kind());
}

bool IsListOrTuple(const Value& v) {
  return v.is_seq() && (v.seq_kind() == SeqKind::kList || v.seq_kind() == SeqKind::kTuple);
}

std::string StrftimeNow(const std::string& format) {
  // datetime.now().strftime: %f is microseconds and a naive datetime prints %z and %Z as "";
  // the rest goes to the C library's strftime, as CPython does on Linux.
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm local;
  const time_t secs = tv.tv_sec;
  localtime_r(&secs, &local);
  std::string fmt;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] == '%' && i + 1 < format.size()) {
      const char c = format[i + 1];
      if (c == 'f') {
        char buf[8];
        std::snprintf(buf, sizeof buf, "%06ld", static_cast<long>(tv.tv_usec));
        fmt += buf;
        ++i;
        continue;
      }
      if (c == 'z' || c == 'Z') {
        ++i;
        continue;
      }
      fmt += format.substr(i, 2);
      ++i;
      continue;
    }
    fmt.push_back(format[i]);
  }
  std::string out(fmt.size() * 4 + 64, '\0');
  const size_t n = fmt.empty() ? 0 : std::strftime(out.data(), out.size(), fmt.c_str(), &local);
  out.resize(n);
  return out;
}

}  // namespace

const Value* Scope::Find(const std::string& name) const {
  for (const Scope* s = this; s != nullptr; s = s->parent) {
    auto it = s->vars.find(name);
    if (it != s->vars.end()) return &it->second;
  }
  return nullptr;
}

// ------------------------------------------------------------------------------------------------
// Operators

StatusOr<Value> BinaryOp(Evaluator& ev, BinOp op, const Value& a, const Value& b) {
  if (op == BinOp::kMod && a.is_string()) return PercentFormat(ev, a.str(), b);
  if (a.is_undefined()) return UndefinedError(a);
  if (b.is_undefined()) return UndefinedError(b);
  const bool ints = a.is_integral() && b.is_integral();
  const bool nums = a.is_number() && b.is_number();
  switch (op) {
    case BinOp::kAdd: {
      if (ints) {
        int64_t r;
        if (__builtin_add_overflow(a.integer(), b.integer(), &r)) return Overflow();
        return Value::Int(r);
      }
      if (nums) return Value::Float(a.number() + b.number());
      if (a.is_string() && b.is_string()) {
        RETURN_IF_ERROR(ev.CheckString(a.str().size() + b.str().size()));
        return Value::String(a.str() + b.str());
      }
      if (IsListOrTuple(a) && b.is_seq() && a.seq_kind() == b.seq_kind()) {
        RETURN_IF_ERROR(ev.CheckList(a.seq().items.size() + b.seq().items.size()));
        std::vector<Value> items = a.seq().items;
        items.insert(items.end(), b.seq().items.begin(), b.seq().items.end());
        return Value::List(std::move(items), a.seq_kind());
      }
      if (a.is_string() || IsListOrTuple(a))
        return TypeError(std::string("can only concatenate ") + TypeName(a) + " (not \"" +
                         TypeName(b) + "\") to " + TypeName(a));
      return OpTypeError("+", a, b);
    }
    case BinOp::kSub:
      if ((a.is_seq() &&
           (a.seq_kind() == SeqKind::kDictKeys || a.seq_kind() == SeqKind::kDictItems)) ||
          (b.is_seq() &&
           (b.seq_kind() == SeqKind::kDictKeys || b.seq_kind() == SeqKind::kDictItems)))
        return Unsupported("set difference of dict views");
      if (ints) {
        int64_t r;
        if (__builtin_sub_overflow(a.integer(), b.integer(), &r)) return Overflow();
        return Value::Int(r);
      }
      if (nums) return Value::Float(a.number() - b.number());
      return OpTypeError("-", a, b);
    case BinOp::kMul:
      if (ints) {
        int64_t r;
        if (__builtin_mul_overflow(a.integer(), b.integer(), &r)) return Overflow();
        return Value::Int(r);
      }
      if (nums) return Value::Float(a.number() * b.number());
      if ((a.is_string() || IsListOrTuple(a)) && b.is_integral()) return Repeat(ev, a, b.integer());
      if ((b.is_string() || IsListOrTuple(b)) && a.is_integral()) return Repeat(ev, b, a.integer());
      if (a.is_string() || IsListOrTuple(a) || b.is_string() || IsListOrTuple(b)) {
        const Value& other = a.is_string() || IsListOrTuple(a) ? b : a;
        return TypeError(std::string("can't multiply sequence by non-int of type '") +
                         TypeName(other) + "'");
      }
      return OpTypeError("*", a, b);
    case BinOp::kDiv:
      if (nums) {
        if (b.number() == 0.0)
          return Status::InvalidArgument(ints ? "ZeroDivisionError: division by zero"
                                              : "ZeroDivisionError: float division by zero");
        if (ints)
          return Value::Float(
              static_cast<double>(static_cast<long double>(a.integer()) / b.integer()));
        return Value::Float(a.number() / b.number());
      }
      return OpTypeError("/", a, b);
    case BinOp::kFloorDiv:
    case BinOp::kMod: {
      const bool floordiv = op == BinOp::kFloorDiv;
      if (ints) {
        const int64_t x = a.integer(), y = b.integer();
        if (y == 0)
          return Status::InvalidArgument(
              floordiv ? "ZeroDivisionError: integer division or modulo by zero"
                       : "ZeroDivisionError: integer modulo by zero");
        if (x == INT64_MIN && y == -1)
          return floordiv ? StatusOr<Value>(Overflow()) : Value::Int(0);
        int64_t q = x / y, r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {
          q -= 1;
          r += y;
        }
        return Value::Int(floordiv ? q : r);
      }
      if (nums) {
        if (b.number() == 0.0)
          return Status::InvalidArgument(floordiv
                                             ? "ZeroDivisionError: float floor division by zero"
                                             : "ZeroDivisionError: float modulo");
        double fd, m;
        FloatDivMod(a.number(), b.number(), &fd, &m);
        return Value::Float(floordiv ? fd : m);
      }
      return OpTypeError(floordiv ? "//" : "%", a, b);
    }
    case BinOp::kPow:
      if (ints && b.integer() >= 0) {
        int64_t base = a.integer(), e = b.integer(), r = 1;
        while (e > 0) {
          if (e & 1) {
            if (__builtin_mul_overflow(r, base, &r)) return Overflow();
          }
          e >>= 1;
          if (e > 0 && __builtin_mul_overflow(base, base, &base)) return Overflow();
        }
        return Value::Int(r);
      }
      if (nums) return FloatPow(a.number(), b.number());
      return OpTypeError("** or pow()", a, b);
  }
  return Status::Internal("unknown operator");
}

StatusOr<bool> Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::kUndefined:
      return false;
    case Kind::kString:
      if (!item.is_string())
        return TypeError(std::string("'in <string>' requires string as left operand, not ") +
                         TypeName(item));
      return container.str().find(item.str()) != std::string::npos;
    case Kind::kSeq:
      for (const Value& v : container.seq().items) {
        if (Equal(v, item)) return true;
      }
      return false;
    case Kind::kDict:
      if (!Hashable(item))
        return TypeError(std::string("unhashable type: '") + TypeName(item) + "'");
      return container.dict().Find(item) >= 0;
    case Kind::kIterator: {
      IteratorData& it = container.iter();
      while (it.pos < it.items.size()) {
        if (Equal(it.items[it.pos++], item)) return true;
      }
      if (it.error) {
        Status e = *it.error;
        it.error.reset();
        return e;
      }
      return false;
    }
    case Kind::kLoop:
      return Unsupported("'in' on a loop object");
    default:
      return TypeError(std::string("argument of type '") + TypeName(container) +
                       "' is not iterable");
  }
}

StatusOr<bool> Compare(CmpOp op, const Value& a, const Value& b) {
  switch (op) {
    case CmpOp::kEq:
      return Equal(a, b);
    case CmpOp::kNe:
      return !Equal(a, b);
    case CmpOp::kLt:
      return Less(a, b);
    case CmpOp::kGt:
      return Less(b, a);
    case CmpOp::kLe: {
      ASSIGN_OR_RETURN(bool lt, Less(a, b));
      return lt || Equal(a, b);
    }
    case CmpOp::kGe: {
      ASSIGN_OR_RETURN(bool gt, Less(b, a));
      return gt || Equal(a, b);
    }
    case CmpOp::kIn:
      return Contains(b, a);
    case CmpOp::kNotIn: {
      ASSIGN_OR_RETURN(bool in, Contains(b, a));
      return !in;
    }
  }
  return false;
}

Status StableSort(std::vector<Value>* items,
                  const std::function<StatusOr<bool>(const Value&, const Value&)>& less) {
  // Bottom-up merge sort: takes from the right run only when strictly less, so equal items keep
  // their order, as Python's sorted() does.
  std::vector<Value>& a = *items;
  std::vector<Value> buf(a.size());
  for (size_t width = 1; width < a.size(); width *= 2) {
    for (size_t lo = 0; lo < a.size(); lo += 2 * width) {
      const size_t mid = std::min(lo + width, a.size()), hi = std::min(lo + 2 * width, a.size());
      size_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) {
        ASSIGN_OR_RETURN(bool right_first, less(a[j], a[i]));
        buf[k++] = right_first ? a[j++] : a[i++];
      }
      while (i < mid) buf[k++] = a[i++];
      while (j < hi) buf[k++] = a[j++];
    }
    a.swap(buf);
  }
  return Status::OK();
}

// ------------------------------------------------------------------------------------------------
// Evaluator

Evaluator::~Evaluator() {
  // Namespaces and loop objects can reference each other (ns.loop = loop); drop what they hold so
  // the shared_ptrs free everything.
  for (auto& h : tracked_) {
    if (auto* ns = dynamic_cast<NamespaceData*>(h.get())) ns->attrs.clear();
    if (auto* loop = dynamic_cast<LoopData*>(h.get())) {
      loop->items.reset();
      loop->changed_value = Value();
    }
  }
}

Status Evaluator::Charge(uint64_t n) {
  steps_ += n;
  if (steps_ > limits_.max_steps)
    return Status::ResourceExhausted("chat template: the render took more than " +
                                     std::to_string(limits_.max_steps) + " steps");
  return Status::OK();
}

Status Evaluator::CheckString(size_t bytes) {
  if (bytes > limits_.max_string_bytes)
    return Status::ResourceExhausted("chat template: a string of " + std::to_string(bytes) +
                                     " bytes passes the limit of " +
                                     std::to_string(limits_.max_string_bytes));
  return Charge(bytes / 64);
}

Status Evaluator::CheckList(size_t items) {
  if (items > limits_.max_list_items)
    return Status::ResourceExhausted("chat template: a list of " + std::to_string(items) +
                                     " items passes the limit of " +
                                     std::to_string(limits_.max_list_items));
  return Charge(items / 16);
}

void Evaluator::Track(std::shared_ptr<HeapObject> mutable_object) {
  tracked_.push_back(std::move(mutable_object));
}

std::shared_ptr<Scope> Evaluator::NewScope(Scope* parent) {
  auto s = std::make_shared<Scope>();
  s->parent = parent;
  return s;
}

Value Evaluator::Lookup(const std::string& name, const Scope* scope) const {
  if (const Value* v = scope->Find(name)) return *v;
  if (const Value* v = context_.dict().FindStr(name)) return *v;
  static const std::pair<const char*, Builtin> kGlobals[] = {
      {"range", Builtin::kRange},
      {"namespace", Builtin::kNamespace},
      {"dict", Builtin::kDict},
      {"raise_exception", Builtin::kRaiseException},
      {"strftime_now", Builtin::kStrftimeNow},
      {"lipsum", Builtin::kUnsupported},
      {"cycler", Builtin::kUnsupported},
      {"joiner", Builtin::kUnsupported},
  };
  for (const auto& [n, kind] : kGlobals) {
    if (name == n) {
      auto c = std::make_shared<CallableData>();
      c->kind = kind;
      c->name = name;
      return Value::Heap(Kind::kCallable, std::move(c));
    }
  }
  return Value::UndefinedName(name);
}

Status Evaluator::AppendOutput(const Value& v, std::string* out) {
  RETURN_IF_ERROR(AppendStr(v, out));
  return CheckString(out->size());
}

StatusOr<std::string> Evaluator::Render(const Template& t, Value context) {
  context_ = std::move(context);
  std::shared_ptr<Scope> top = NewScope(nullptr);
  std::string out;
  ASSIGN_OR_RETURN(Flow flow, Exec(t.body, top.get(), &out));
  (void)flow;  // break and continue cannot reach the top level (the parser refuses them there)
  return out;
}

StatusOr<Flow> Evaluator::Exec(const std::vector<std::unique_ptr<Stmt>>& body, Scope* scope,
                               std::string* out) {
  for (const auto& s : body) {
    ASSIGN_OR_RETURN(Flow flow, ExecOne(*s, scope, out));
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

StatusOr<Flow> Evaluator::ExecOne(const Stmt& s, Scope* scope, std::string* out) {
  LOCATED(s.pos, Charge());
  switch (s.kind) {
    case StmtKind::kData:
      out->append(s.text);
      LOCATED(s.pos, CheckString(out->size()));
      return Flow::kNormal;
    case StmtKind::kOutput: {
      ASSIGN_OR_RETURN(Value v, Eval(*s.expr, scope));
      LOCATED(s.expr->pos, AppendOutput(v, out));
      return Flow::kNormal;
    }
    case StmtKind::kIf: {
      ASSIGN_OR_RETURN(Value test, Eval(*s.expr, scope));
      return Exec(Truthy(test) ? s.body : s.else_body, scope, out);
    }
    case StmtKind::kFor:
      return ExecFor(s, scope, out);
    case StmtKind::kAssign: {
      ASSIGN_OR_RETURN(Value v, Eval(*s.expr, scope));
      LOCATED(s.pos, Assign(s.target, v, scope));
      return Flow::kNormal;
    }
    case StmtKind::kAssignBlock:
    case StmtKind::kFilterBlock: {
      std::shared_ptr<Scope> inner = NewScope(scope);
      std::string buf;
      ASSIGN_OR_RETURN(Flow flow, Exec(s.body, inner.get(), &buf));
      if (flow != Flow::kNormal) return flow;
      Value v = Value::String(std::move(buf));
      if (s.filter) {
        const Value* saved = block_operand_;
        block_operand_ = &v;
        StatusOr<Value> filtered = Eval(*s.filter, inner.get());
        block_operand_ = saved;
        if (!filtered.ok()) return filtered.status();
        v = std::move(filtered).value();
      }
      if (s.kind == StmtKind::kFilterBlock) {
        LOCATED(s.pos, AppendOutput(v, out));
      } else {
        LOCATED(s.pos, Assign(s.target, v, scope));
      }
      return Flow::kNormal;
    }
    case StmtKind::kBreak:
      return Flow::kBreak;
    case StmtKind::kContinue:
      return Flow::kContinue;
    case StmtKind::kMacro: {
      auto c = std::make_shared<CallableData>();
      c->kind = Builtin::kMacro;
      c->name = s.text;
      c->macro = &s;
      c->closure = scope->weak_from_this();
      scope->vars[s.text] = Value::Heap(Kind::kCallable, std::move(c));
      return Flow::kNormal;
    }
    case StmtKind::kScope: {
      std::shared_ptr<Scope> inner = NewScope(scope);
      return Exec(s.body, inner.get(), out);
    }
    case StmtKind::kWith: {
      std::shared_ptr<Scope> inner = NewScope(scope);
      for (size_t i = 0; i < s.targets.size(); ++i) {
        ASSIGN_OR_RETURN(Value v, Eval(*s.values[i], scope));
        LOCATED(s.targets[i].pos, Assign(s.targets[i], v, inner.get()));
      }
      return Exec(s.body, inner.get(), out);
    }
  }
  return Status::Internal("unknown statement");
}

StatusOr<Flow> Evaluator::ExecFor(const Stmt& s, Scope* scope, std::string* out) {
  ASSIGN_OR_RETURN(Value iterable, Eval(*s.expr, scope));
  ASSIGN_OR_LOCATED(std::vector<Value> items, s.expr->pos, Iterate(iterable));
  if (s.test) {
    std::vector<Value> kept;
    for (Value& item : items) {
      LOCATED(s.test->pos, Charge());
      std::shared_ptr<Scope> test_scope = NewScope(scope);
      LOCATED(s.target.pos, Assign(s.target, item, test_scope.get()));
      ASSIGN_OR_RETURN(Value keep, Eval(*s.test, test_scope.get()));
      if (Truthy(keep)) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  auto loop = std::make_shared<LoopData>();
  loop->items = std::make_shared<const std::vector<Value>>(std::move(items));
  Track(loop);
  const Value loop_value = Value::Heap(Kind::kLoop, loop);
  bool completed = false;
  for (size_t i = 0; i < loop->items->size(); ++i) {
    LOCATED(s.pos, Charge());
    loop->index0 = static_cast<int64_t>(i);
    std::shared_ptr<Scope> iter_scope = NewScope(scope);
    LOCATED(s.target.pos, Assign(s.target, (*loop->items)[i], iter_scope.get()));
    iter_scope->vars["loop"] = loop_value;
    ASSIGN_OR_RETURN(Flow flow, Exec(s.body, iter_scope.get(), out));
    if (flow == Flow::kBreak) break;
    if (flow == Flow::kContinue) continue;
    completed = true;
  }
  if (!completed && !s.else_body.empty()) {
    std::shared_ptr<Scope> else_scope = NewScope(scope);
    return Exec(s.else_body, else_scope.get(), out);
  }
  return Flow::kNormal;
}

Status Evaluator::Assign(const Target& t, const Value& v, Scope* scope) {
  switch (t.kind) {
    case Target::kName:
      if (Nesting(v) > kMaxNesting) return Unsupported("lists nested more than 512 levels deep");
      scope->vars[t.name] = v;
      return Status::OK();
    case Target::kTuple: {
      if (!v.is_undefined() && !v.is_string() && !v.is_seq() && !v.is_dict() &&
          v.kind() != Kind::kIterator)
        return TypeError(std::string("cannot unpack non-iterable ") + TypeName(v) + " object");
      ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
      if (items.size() < t.items.size())
        return ValueError("not enough values to unpack (expected " +
                          std::to_string(t.items.size()) + ", got " + std::to_string(items.size()) +
                          ")");
      if (items.size() > t.items.size())
        return ValueError("too many values to unpack (expected " + std::to_string(t.items.size()) +
                          ")");
      for (size_t i = 0; i < items.size(); ++i)
        RETURN_IF_ERROR(Assign(t.items[i], items[i], scope));
      return Status::OK();
    }
    case Target::kNamespaceAttr: {
      const Value ns = Lookup(t.name, scope);
      if (ns.kind() != Kind::kNamespace)
        return Status::InvalidArgument(
            "TemplateRuntimeError: cannot assign attribute on non-namespace object");
      if (Nesting(v) > kMaxNesting) return Unsupported("lists nested more than 512 levels deep");
      if (Value* slot = ns.ns().Find(t.attr)) {
        *slot = v;
      } else {
        ns.ns().attrs.emplace_back(t.attr, v);
      }
      return Status::OK();
    }
  }
  return Status::OK();
}

StatusOr<CallArgs> Evaluator::EvalArgs(const Expr& e, size_t first, Scope* scope) {
  CallArgs a;
  for (size_t i = first; i < e.children.size(); ++i) {
    ASSIGN_OR_RETURN(Value v, Eval(*e.children[i], scope));
    a.args.push_back(std::move(v));
  }
  for (const auto& [k, expr] : e.kwargs) {
    ASSIGN_OR_RETURN(Value v, Eval(*expr, scope));
    a.kwargs.emplace_back(k, std::move(v));
  }
  return a;
}

StatusOr<Value> Evaluator::Eval(const Expr& e, Scope* scope) {
  LOCATED(e.pos, Charge());
  switch (e.kind) {
    case ExprKind::kConst:
      return e.constant;
    case ExprKind::kName:
      if (folding_) return Impossible();
      return Lookup(e.name, scope);
    case ExprKind::kGetattr: {
      ASSIGN_OR_RETURN(Value obj, Eval(*e.children[0], scope));
      if (obj.is_undefined()) return At(e.pos, UndefinedError(obj));
      ASSIGN_OR_LOCATED(Value v, e.pos, GetAttr(obj, e.name));
      return v;
    }
    case ExprKind::kGetitem: {
      ASSIGN_OR_RETURN(Value obj, Eval(*e.children[0], scope));
      const Expr& index = *e.children[1];
      if (index.kind == ExprKind::kTuple && folding_) {
        // a[x, y:z]: only Jinja's constant folding can evaluate a slice inside a tuple (its
        // compiled Python would be a syntax error, which Compile reports); the sandbox's getitem
        // then fails on the tuple key and gives Undefined.
        bool has_slice = false;
        for (const auto& c : index.children) {
          if (c->kind != ExprKind::kSlice) continue;
          has_slice = true;
          for (const auto& part : c->children) {
            if (part) RETURN_IF_ERROR(Eval(*part, scope).status());
          }
        }
        if (has_slice) {
          for (const auto& c : index.children) {
            if (c->kind != ExprKind::kSlice) RETURN_IF_ERROR(Eval(*c, scope).status());
          }
          if (obj.is_undefined()) return At(e.pos, UndefinedError(obj));
          return Value::Undefined("", ObjectTypeRepr(obj), "(slice, ...)", /*name_is_str=*/false);
        }
      }
      if (index.kind == ExprKind::kSlice) {
        Value parts[3] = {Value::None(), Value::None(), Value::None()};
        for (int i = 0; i < 3; ++i) {
          if (index.children[static_cast<size_t>(i)]) {
            ASSIGN_OR_RETURN(parts[i], Eval(*index.children[static_cast<size_t>(i)], scope));
          }
        }
        if (obj.is_undefined()) return At(e.pos, UndefinedError(obj));
        ASSIGN_OR_LOCATED(Value v, e.pos, Slice(*this, obj, parts[0], parts[1], parts[2]));
        return v;
      }
      ASSIGN_OR_RETURN(Value key, Eval(index, scope));
      if (obj.is_undefined()) return At(e.pos, UndefinedError(obj));
      ASSIGN_OR_LOCATED(Value v, e.pos, GetItem(obj, key));
      return v;
    }
    case ExprKind::kSlice:
      return At(e.pos, Status::Internal("slice outside a subscript"));
    case ExprKind::kCall:
      if (folding_) return Impossible();
      return EvalCall(e, scope);
    case ExprKind::kFilter: {
      if (folding_ && (e.builtin < 0 || !e.children[0] || e.name == "map" || e.name == "select" ||
                       e.name == "reject" || e.name == "selectattr" || e.name == "rejectattr"))
        return Impossible();
      Value operand;
      if (e.children[0]) {
        ASSIGN_OR_RETURN(operand, Eval(*e.children[0], scope));
      } else if (block_operand_ != nullptr) {
        operand = *block_operand_;
      }
      ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1, scope));
      if (e.builtin < 0)
        return At(e.pos, Status::InvalidArgument("TemplateRuntimeError: No filter named '" +
                                                 e.name + "' found."));
      ASSIGN_OR_LOCATED(Value v, e.pos, CallFilter(*this, e.builtin, operand, std::move(args)));
      return v;
    }
    case ExprKind::kTest: {
      if (folding_ && e.builtin < 0) return Impossible();
      ASSIGN_OR_RETURN(Value operand, Eval(*e.children[0], scope));
      ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1, scope));
      if (e.builtin < 0)
        return At(e.pos, Status::InvalidArgument("TemplateRuntimeError: No test named '" + e.name +
                                                 "' found."));
      ASSIGN_OR_LOCATED(bool r, e.pos, CallTest(*this, e.builtin, operand, std::move(args)));
      return Value::Bool(r);
    }
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      ASSIGN_OR_RETURN(Value v, Eval(*e.children[0], scope));
      if (v.is_undefined()) return At(e.pos, UndefinedError(v));
      const bool neg = e.kind == ExprKind::kNeg;
      if (v.is_float()) return Value::Float(neg ? -v.number() : v.number());
      if (v.is_integral()) {
        if (neg && v.integer() == INT64_MIN) return At(e.pos, Overflow());
        return Value::Int(neg ? -v.integer() : v.integer());
      }
      return At(e.pos, TypeError(std::string("bad operand type for unary ") + (neg ? "-" : "+") +
                                 ": '" + TypeName(v) + "'"));
    }
    case ExprKind::kNot: {
      ASSIGN_OR_RETURN(Value v, Eval(*e.children[0], scope));
      return Value::Bool(!Truthy(v));
    }
    case ExprKind::kBinary: {
      ASSIGN_OR_RETURN(Value a, Eval(*e.children[0], scope));
      ASSIGN_OR_RETURN(Value b, Eval(*e.children[1], scope));
      ASSIGN_OR_LOCATED(Value v, e.pos, BinaryOp(*this, e.op, a, b));
      return v;
    }
    case ExprKind::kAnd:
    case ExprKind::kOr: {
      ASSIGN_OR_RETURN(Value a, Eval(*e.children[0], scope));
      if (Truthy(a) == (e.kind == ExprKind::kOr)) return a;
      return Eval(*e.children[1], scope);
    }
    case ExprKind::kConcat: {
      std::string s;
      for (const auto& c : e.children) {
        ASSIGN_OR_RETURN(Value v, Eval(*c, scope));
        LOCATED(e.pos, AppendStr(v, &s));
        LOCATED(e.pos, CheckString(s.size()));
      }
      return Value::String(std::move(s));
    }
    case ExprKind::kCompare: {
      ASSIGN_OR_RETURN(Value left, Eval(*e.children[0], scope));
      for (size_t i = 0; i < e.cmp_ops.size(); ++i) {
        ASSIGN_OR_RETURN(Value right, Eval(*e.children[i + 1], scope));
        ASSIGN_OR_LOCATED(bool r, e.pos, Compare(e.cmp_ops[i], left, right));
        if (!r) return Value::Bool(false);
        left = std::move(right);
      }
      return Value::Bool(true);
    }
    case ExprKind::kCondExpr: {
      ASSIGN_OR_RETURN(Value test, Eval(*e.children[0], scope));
      if (Truthy(test)) return Eval(*e.children[1], scope);
      if (e.children[2]) return Eval(*e.children[2], scope);
      if (folding_) return Impossible();
      return Value::Undefined("the inline if-expression on line " + std::to_string(e.pos.line) +
                              " evaluated to false and no else section was defined.");
    }
    case ExprKind::kList:
    case ExprKind::kTuple: {
      std::vector<Value> items;
      for (const auto& c : e.children) {
        ASSIGN_OR_RETURN(Value v, Eval(*c, scope));
        items.push_back(std::move(v));
      }
      return Value::List(std::move(items),
                         e.kind == ExprKind::kList ? SeqKind::kList : SeqKind::kTuple);
    }
    case ExprKind::kDict: {
      auto d = std::make_shared<DictData>();
      for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
        ASSIGN_OR_RETURN(Value k, Eval(*e.children[i], scope));
        ASSIGN_OR_RETURN(Value v, Eval(*e.children[i + 1], scope));
        if (!Hashable(k))
          return At(e.children[i]->pos,
                    TypeError(std::string("unhashable type: '") + TypeName(k) + "'"));
        d->Set(std::move(k), std::move(v));
      }
      return Value::MakeDict(std::move(d));
    }
  }
  return At(e.pos, Status::Internal("unknown expression"));
}

std::optional<Value> Evaluator::Fold(const Expr& e) {
  folding_ = true;
  std::shared_ptr<Scope> scope = NewScope(nullptr);
  StatusOr<Value> v = Eval(e, scope.get());
  folding_ = false;
  if (!v.ok()) return std::nullopt;
  return std::move(v).value();
}

std::optional<Value> FoldConstant(const Expr& e) {
  // Small limits: folding runs at parse time, and anything it gives up on is evaluated at render
  // time.
  RenderLimits limits;
  limits.max_steps = 100'000;
  limits.max_string_bytes = size_t{64} << 10;
  limits.max_list_items = size_t{4} << 10;
  Evaluator ev(limits);
  return ev.Fold(e);
}

StatusOr<Value> Evaluator::EvalCall(const Expr& e, Scope* scope) {
  ASSIGN_OR_RETURN(Value callee, Eval(*e.children[0], scope));
  ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1, scope));
  ASSIGN_OR_LOCATED(Value v, e.pos, Call(callee, std::move(args)));
  return v;
}

StatusOr<Value> Evaluator::Call(const Value& callee, CallArgs a) {
  if (callee.is_undefined()) return UndefinedError(callee);
  if (callee.kind() != Kind::kCallable)
    return TypeError(std::string("'") + TypeName(callee) + "' object is not callable");
  const CallableData& c = callee.callable();
  auto no_kwargs = [&](const char* f) -> Status {
    if (!a.kwargs.empty()) return TypeError(std::string(f) + "() takes no keyword arguments");
    return Status::OK();
  };
  switch (c.kind) {
    case Builtin::kRange: {
      RETURN_IF_ERROR(no_kwargs("range"));
      if (a.args.empty() || a.args.size() > 3)
        return TypeError("range expected at most 3 arguments, got " +
                         std::to_string(a.args.size()));
      for (const Value& v : a.args) {
        if (!v.is_integral())
          return TypeError(std::string("'") + TypeName(v) +
                           "' object cannot be interpreted as an integer");
      }
      const int64_t start = a.args.size() == 1 ? 0 : a.args[0].integer();
      const int64_t stop = a.args.size() == 1 ? a.args[0].integer() : a.args[1].integer();
      const int64_t step = a.args.size() == 3 ? a.args[2].integer() : 1;
      if (step == 0) return ValueError("range() arg 3 must not be zero");
      const __int128 span =
          step > 0 ? static_cast<__int128>(stop) - start : static_cast<__int128>(start) - stop;
      const __int128 abs_step = step > 0 ? step : -static_cast<__int128>(step);
      const __int128 len = span <= 0 ? 0 : (span + abs_step - 1) / abs_step;
      if (len > kMaxRange)
        return Status::InvalidArgument(
            "OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE "
            "(100000).");
      RETURN_IF_ERROR(Charge(static_cast<uint64_t>(len) / 16));
      return Value::Range(start, stop, step);
    }
    case Builtin::kNamespace:
    case Builtin::kDict: {
      if (a.args.size() > 1)
        return TypeError("dict expected at most 1 argument, got " + std::to_string(a.args.size()));
      auto d = std::make_shared<DictData>();
      if (a.args.size() == 1) {
        const Value& init = a.args[0];
        if (init.is_dict()) {
          for (const auto& kv : init.dict().items) d->Set(kv.first, kv.second);
        } else {
          ASSIGN_OR_RETURN(std::vector<Value> pairs, Iterate(init));
          for (const Value& p : pairs) {
            ASSIGN_OR_RETURN(std::vector<Value> kv, Iterate(p));
            if (kv.size() != 2)
              return ValueError("dictionary update sequence element has length " +
                                std::to_string(kv.size()) + "; 2 is required");
            if (!Hashable(kv[0]))
              return TypeError(std::string("unhashable type: '") + TypeName(kv[0]) + "'");
            d->Set(kv[0], kv[1]);
          }
        }
      }
      for (auto& [k, v] : a.kwargs) d->Set(Value::String(k), std::move(v));
      if (c.kind == Builtin::kDict) return Value::MakeDict(std::move(d));
      auto ns = std::make_shared<NamespaceData>();
      for (auto& [k, v] : d->items) {
        if (!k.is_string()) return TypeError("keywords must be strings");
        ns->attrs.emplace_back(k.str(), std::move(v));
      }
      Track(ns);
      return Value::Heap(Kind::kNamespace, std::move(ns));
    }
    case Builtin::kRaiseException: {
      RETURN_IF_ERROR(no_kwargs("raise_exception"));
      if (a.args.size() != 1)
        return TypeError("raise_exception() takes 1 positional argument but " +
                         std::to_string(a.args.size()) + " were given");
      std::string msg;
      RETURN_IF_ERROR(AppendStr(a.args[0], &msg));
      return Status::InvalidArgument("TemplateError: " + msg);
    }
    case Builtin::kStrftimeNow: {
      RETURN_IF_ERROR(no_kwargs("strftime_now"));
      if (a.args.size() != 1 || !a.args[0].is_string())
        return TypeError("strftime_now() takes one string argument");
      RETURN_IF_ERROR(CheckString(a.args[0].str().size() * 4));
      return Value::String(StrftimeNow(a.args[0].str()));
    }
    case Builtin::kMethod:
      return CallMethod(*this, c, std::move(a));
    case Builtin::kLoopCycle: {
      RETURN_IF_ERROR(no_kwargs("cycle"));
      if (a.args.empty()) return TypeError("no items for cycling given");
      const int64_t i = c.receiver.loop().index0 % static_cast<int64_t>(a.args.size());
      return a.args[static_cast<size_t>(i)];
    }
    case Builtin::kLoopChanged: {
      RETURN_IF_ERROR(no_kwargs("changed"));
      LoopData& loop = c.receiver.loop();
      Value now = Value::List(std::move(a.args), SeqKind::kTuple);
      if (loop.has_changed_value && Equal(loop.changed_value, now)) return Value::Bool(false);
      loop.has_changed_value = true;
      loop.changed_value = std::move(now);
      return Value::Bool(true);
    }
    case Builtin::kMacro:
      return CallMacro(c, std::move(a));
    case Builtin::kUnsupported:
      return Unsupported("the global function '" + c.name + "'");
  }
  return Status::Internal("unknown callable");
}

StatusOr<Value> Evaluator::CallMacro(const CallableData& c, CallArgs a) {
  const Stmt& m = *c.macro;
  std::shared_ptr<Scope> closure = c.closure.lock();
  if (!closure)
    return Unsupported("calling macro '" + m.text + "' after the block that defined it ended");
  if (call_depth_ >= limits_.max_call_depth)
    return Status::ResourceExhausted("chat template: macro calls nested deeper than " +
                                     std::to_string(limits_.max_call_depth));
  std::shared_ptr<Scope> scope = NewScope(closure.get());
  const size_t n = m.params.size();
  const size_t first_default = n - m.values.size();
  std::vector<std::optional<Value>> bound(n);
  for (size_t i = 0; i < n && i < a.args.size(); ++i) bound[i] = a.args[i];
  std::vector<std::pair<std::string, Value>> extra_kwargs;
  for (auto& [k, v] : a.kwargs) {
    bool placed = false;
    for (size_t i = a.args.size(); i < n; ++i) {
      if (m.params[i] == k) {
        bound[i] = v;
        placed = true;
        break;
      }
    }
    if (!placed) extra_kwargs.emplace_back(k, v);
  }
  if (!extra_kwargs.empty() && !m.catch_kwargs)
    return TypeError("macro '" + m.text + "' takes no keyword argument '" + extra_kwargs[0].first +
                     "'");
  if (a.args.size() > n && !m.catch_varargs)
    return TypeError("macro '" + m.text + "' takes not more than " + std::to_string(n) +
                     " argument(s)");
  ++call_depth_;
  struct DepthRestore {
    int* d;
    ~DepthRestore() { --*d; }
  } restore{&call_depth_};
  // Defaults are evaluated at call time, in the macro's scope, so they can use earlier parameters.
  for (size_t i = 0; i < n; ++i) {
    if (bound[i]) {
      if (Nesting(*bound[i]) > kMaxNesting)
        return Unsupported("lists nested more than 512 levels deep");
      scope->vars[m.params[i]] = *bound[i];
    } else if (i >= first_default) {
      ASSIGN_OR_RETURN(Value v, Eval(*m.values[i - first_default], scope.get()));
      scope->vars[m.params[i]] = std::move(v);
    } else {
      scope->vars[m.params[i]] =
          Value::Undefined("parameter '" + m.params[i] + "' was not provided");
    }
  }
  if (m.catch_varargs) {
    std::vector<Value> rest;
    for (size_t i = n; i < a.args.size(); ++i) rest.push_back(a.args[i]);
    scope->vars["varargs"] = Value::List(std::move(rest), SeqKind::kTuple);
  }
  if (m.catch_kwargs) {
    auto d = std::make_shared<DictData>();
    for (auto& [k, v] : extra_kwargs) d->Set(Value::String(k), v);
    scope->vars["kwargs"] = Value::MakeDict(std::move(d));
  }
  scope->vars["caller"] = Value::Undefined("No caller defined");
  std::string out;
  ASSIGN_OR_RETURN(Flow flow, Exec(m.body, scope.get(), &out));
  (void)flow;
  return Value::String(std::move(out));
}

}  // namespace blockkv::jinja
