// What Jinja2's compiler and optimizer do to a parsed template before it runs, and what of it a
// template can observe:
//  - the optimizer folds every constant subexpression whose value has a literal repr into a
//    constant, and every constant {{ }} expression into text. Folding evaluates through the
//    sandbox (Expr.as_const), which differs from the compiled code in one way templates can see:
//    slicing something that cannot be sliced gives Undefined there and TypeError at run time. So
//    the same subexpressions are folded here, by the evaluator's folding mode;
//  - an unknown filter or test is a compile error unless it sits in an if statement or a
//    conditional expression (a "soft frame"), where it becomes an error when it runs. Folding
//    comes first: a filter inside a subexpression folded away is never compiled, so an unknown
//    one there is no error;
//  - a slice inside a tuple subscript (a[1:, 2]) compiles to invalid Python unless folded away.
#include <cmath>

#include "attention/model/chat_template_internal.h"

namespace blockkv::jinja {

namespace {

bool SafeRepr(const Value& v) {
  switch (v.kind()) {
    case Kind::kNone:
    case Kind::kBool:
    case Kind::kInt:
    case Kind::kFloat:
    case Kind::kString:
      return true;
    case Kind::kSeq:
      if (v.seq_kind() != SeqKind::kList && v.seq_kind() != SeqKind::kTuple &&
          v.seq_kind() != SeqKind::kRange)
        return false;
      for (const Value& i : v.seq().items) {
        if (!SafeRepr(i)) return false;
      }
      return true;
    case Kind::kDict:
      for (const auto& [k, val] : v.dict().items) {
        if (!SafeRepr(k) || !SafeRepr(val)) return false;
      }
      return true;
    default:
      return false;
  }
}
void Fold(Expr* e) {
  for (auto& c : e->children) {
    if (c) Fold(c.get());
  }
  for (auto& kw : e->kwargs) Fold(kw.second.get());
  if (e->kind == ExprKind::kConst || e->kind == ExprKind::kSlice || e->kind == ExprKind::kName)
    return;
  std::optional<Value> v = FoldConstant(*e);
  if (v && SafeRepr(*v)) {
    e->kind = ExprKind::kConst;
    e->constant = std::move(*v);
    e->children.clear();
    e->kwargs.clear();
    return;
  }
  // Jinja writes a folded constant into the generated Python with repr(), unparenthesized: a
  // negative base of ** then binds as Python reads "-2 ** x", which is -(2 ** x).
  if (e->kind == ExprKind::kBinary && e->op == BinOp::kPow &&
      e->children[0]->kind == ExprKind::kConst) {
    Value& base = e->children[0]->constant;
    const bool negative = (base.is_int() && base.integer() < 0 && base.integer() != INT64_MIN) ||
                          (base.is_float() && std::signbit(base.number()) &&
                           !std::isinf(base.number()) && !std::isnan(base.number()));
    if (negative) {
      base = base.is_int() ? Value::Int(-base.integer()) : Value::Float(-base.number());
      auto pow = std::make_unique<Expr>();
      pow->kind = ExprKind::kBinary;
      pow->op = BinOp::kPow;
      pow->pos = e->pos;
      pow->offset = e->offset;
      pow->children = std::move(e->children);
      e->children.clear();
      e->children.push_back(std::move(pow));
      e->kind = ExprKind::kNeg;
    }
  }
}
void Fold(Stmt* s) {
  for (Expr* e : {s->expr.get(), s->test.get(), s->filter.get()}) {
    if (e != nullptr) Fold(e);
  }
  for (auto& v : s->values) Fold(v.get());
  for (auto& b : s->body) Fold(b.get());
  for (auto& b : s->else_body) Fold(b.get());
  if (s->kind == StmtKind::kOutput) {
    std::optional<Value> v = FoldConstant(*s->expr);
    std::string text;
    if (v && AppendStr(*v, &text).ok()) {
      s->kind = StmtKind::kData;
      s->text = std::move(text);
      s->expr.reset();
    }
  }
}

// Loop bodies, macros and set blocks start hard frames again.
bool CheckUnknown(const Expr& e, bool soft, SourceError* error) {
  if (e.kind == ExprKind::kCondExpr) soft = true;
  if ((e.kind == ExprKind::kFilter || e.kind == ExprKind::kTest) && e.builtin < 0 && !soft) {
    error->message = std::string("unknown ") + (e.kind == ExprKind::kFilter ? "filter" : "test") +
                     " '" + e.name + "'";
    error->offset = e.kind == ExprKind::kFilter ? e.offset : e.name_offset;
    return false;
  }
  for (const auto& c : e.children) {
    if (c && !CheckUnknown(*c, soft, error)) return false;
  }
  for (const auto& kw : e.kwargs) {
    if (!CheckUnknown(*kw.second, soft, error)) return false;
  }
  return true;
}
bool CheckUnknown(const Stmt& s, bool soft, SourceError* error) {
  auto all = [&](const std::vector<std::unique_ptr<Stmt>>& body, bool soft_body) {
    for (const auto& b : body) {
      if (!CheckUnknown(*b, soft_body, error)) return false;
    }
    return true;
  };
  switch (s.kind) {
    case StmtKind::kIf:
      soft = true;
      break;
    case StmtKind::kFor:
      return CheckUnknown(*s.expr, soft, error) &&
             (!s.test || CheckUnknown(*s.test, false, error)) && all(s.body, false) &&
             all(s.else_body, false);
    case StmtKind::kAssignBlock:
    case StmtKind::kFilterBlock:
    case StmtKind::kMacro:
    case StmtKind::kScope:
    case StmtKind::kWith:
      for (const auto& v : s.values) {
        if (!CheckUnknown(*v, s.kind == StmtKind::kWith && soft, error)) return false;
      }
      return (!s.filter || CheckUnknown(*s.filter, false, error)) && all(s.body, false);
    default:
      break;
  }
  for (const Expr* e : {s.expr.get(), s.test.get(), s.filter.get()}) {
    if (e != nullptr && !CheckUnknown(*e, soft, error)) return false;
  }
  return all(s.body, soft) && all(s.else_body, soft);
}

// A slice anywhere but directly in a subscript (a[1:, 2]) compiles to invalid Python.
bool CheckSlices(const Expr& e, bool slice_allowed, SourceError* error) {
  if (e.kind == ExprKind::kSlice && !slice_allowed) {
    error->offset = e.offset;
    error->message = "invalid syntax (a slice inside a tuple subscript)";
    return false;
  }
  for (size_t i = 0; i < e.children.size(); ++i) {
    const bool index = e.kind == ExprKind::kGetitem && i == 1;
    if (e.children[i] && !CheckSlices(*e.children[i], index, error)) return false;
  }
  for (const auto& kw : e.kwargs) {
    if (!CheckSlices(*kw.second, false, error)) return false;
  }
  return true;
}

bool CheckSlices(const Stmt& s, SourceError* error) {
  for (const Expr* e : {s.expr.get(), s.test.get(), s.filter.get()}) {
    if (e != nullptr && !CheckSlices(*e, false, error)) return false;
  }
  for (const auto& v : s.values) {
    if (!CheckSlices(*v, false, error)) return false;
  }
  for (const auto& b : s.body) {
    if (!CheckSlices(*b, error)) return false;
  }
  for (const auto& b : s.else_body) {
    if (!CheckSlices(*b, error)) return false;
  }
  return true;
}

}  // namespace

bool Compile(std::vector<std::unique_ptr<Stmt>>* body, SourceError* error) {
  for (auto& s : *body) Fold(s.get());
  for (const auto& s : *body) {
    if (!CheckUnknown(*s, false, error) || !CheckSlices(*s, error)) return false;
  }
  return true;
}

}  // namespace blockkv::jinja
