// The chat template parser: jinja2/parser.py (3.1) rewritten over chat_template_lexer.cc's tokens,
// one function per Python method, so that what Jinja accepts, rejects and how it groups operators
// carries over (filters bind tighter than arithmetic but looser than unary minus; `not` is looser
// than comparisons; a test's argument may be written without parentheses; conditional expressions
// are not allowed in `if` and `for` headers...).
//
// Jinja decides a few things when it compiles the parse tree rather than when it parses it:
// `break` outside a loop and assigning to `loop` are parse errors here too; constant folding and
// unknown filters and tests are chat_template_compile.cc's.
//
// The parser throws a private exception on the first error, as Jinja's raises TemplateSyntaxError;
// it never leaves ParseTemplate, which turns it into an InvalidArgument Status naming line and
// column.
#include <algorithm>
#include <cstring>
#include <set>

#include "attention/model/chat_template_internal.h"

namespace blockkv::jinja {

namespace {

constexpr int kMaxExprDepth = 200;  // nesting of one expression's tree
constexpr int kMaxStmtDepth = 100;  // nesting of statements

struct ParseError {
  size_t offset;
  std::string message;
};

using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;

class Parser {
 public:
  explicit Parser(const LexResult& lex) : lex_(lex), toks_(lex.tokens) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < lex.source.size(); ++i) {
      if (lex.source[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  std::vector<StmtPtr> ParseAll() {
    std::vector<StmtPtr> body = Subparse(nullptr);
    SourceError error;
    if (!Compile(&body, &error)) Fail(error.message, error.offset);
    return body;
  }

  // Line and column (in code points) of a byte offset. Nodes are made roughly in source order, so
  // this walks on from the previous answer instead of recounting a (possibly very long) line.
  SourcePos Pos(size_t offset) {
    offset = std::min(offset, lex_.source.size());
    if (offset < pos_offset_) {
      const size_t line =
          static_cast<size_t>(std::upper_bound(line_starts_.begin(), line_starts_.end(), offset) -
                              line_starts_.begin()) -
          1;
      pos_offset_ = line_starts_[line];
      pos_.line = static_cast<int>(line) + 1;
      pos_.column = 1;
    }
    for (size_t i = pos_offset_; i < offset; ++i) {
      const char c = lex_.source[i];
      if (c == '\n') {
        ++pos_.line;
        pos_.column = 1;
      } else if ((static_cast<uint8_t>(c) & 0xC0) != 0x80) {
        ++pos_.column;
      }
    }
    pos_offset_ = offset;
    return pos_;
  }

 private:
  // ---- token stream ----
  const Token& Cur() const { return toks_[i_]; }
  const Token& Look() const { return toks_[std::min(i_ + 1, toks_.size() - 1)]; }
  const Token& Next() {
    const Token& t = toks_[i_];
    if (t.type != Tok::kEof) ++i_;
    return t;
  }
  static bool IsOp(const Token& t, const char* op) {
    return t.type == Tok::kOperator && t.text == op;
  }
  static bool IsName(const Token& t, const char* name) {
    return t.type == Tok::kName && t.text == name;
  }
  bool CurOp(const char* op) const { return IsOp(Cur(), op); }
  bool CurName(const char* name) const { return IsName(Cur(), name); }
  bool SkipOp(const char* op) {
    if (!CurOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(const char* name) {
    if (!CurName(name)) return false;
    Next();
    return true;
  }

  [[noreturn]] void Fail(const std::string& message, size_t offset) {
    throw ParseError{offset, message};
  }
  [[noreturn]] void Fail(const std::string& message) { Fail(message, Cur().offset); }

  static std::string Describe(const Token& t) {
    switch (t.type) {
      case Tok::kName:
        return t.text;
      case Tok::kOperator:
        return t.text;
      case Tok::kString:
        return "string";
      case Tok::kInteger:
        return "integer";
      case Tok::kFloat:
        return "float";
      case Tok::kData:
        return "template data / text";
      case Tok::kVariableBegin:
        return "begin of print statement";
      case Tok::kVariableEnd:
        return "end of print statement";
      case Tok::kBlockBegin:
        return "begin of statement block";
      case Tok::kBlockEnd:
        return "end of statement block";
      case Tok::kEof:
        return "end of template";
    }
    return "?";
  }

  void Expect(Tok type, const char* what) {
    if (Cur().type == type) {
      Next();
      return;
    }
    ExpectFailed(what);
  }
  void ExpectOp(const char* op) {
    if (CurOp(op)) {
      Next();
      return;
    }
    ExpectFailed(op);
  }
  const Token& ExpectName() {
    if (Cur().type != Tok::kName) ExpectFailed("name");
    return Next();
  }
  void ExpectNameValue(const char* name) {
    if (!CurName(name)) ExpectFailed(name);
    Next();
  }
  [[noreturn]] void ExpectFailed(const std::string& what) {
    if (Cur().type == Tok::kEof) Fail("unexpected end of template, expected '" + what + "'.");
    Fail("expected token '" + what + "', got '" + Describe(Cur()) + "'");
  }

  // ---- node construction ----
  ExprPtr MakeExpr(ExprKind kind, size_t offset) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = Pos(offset);
    e->offset = offset;
    return e;
  }
  // Checks the depth of a finished node, so that evaluation cannot recurse without bound (a + b + c
  // ... is parsed by a loop but evaluated by recursion).
  ExprPtr Done(ExprPtr e) {
    int depth = 0;
    for (const auto& c : e->children) {
      if (c) depth = std::max(depth, c->depth);
    }
    for (const auto& kw : e->kwargs) depth = std::max(depth, kw.second->depth);
    if (depth + 1 > kMaxExprDepth)
      Fail("unsupported: expression nested deeper than 200 levels", e->offset);
    e->depth = depth + 1;
    return e;
  }
  struct DepthGuard {
    DepthGuard(Parser* p, int* counter, int limit, const char* what) : counter_(counter) {
      if (++*counter_ > limit) p->Fail(std::string("unsupported: ") + what + " nested too deeply");
    }
    ~DepthGuard() { --*counter_; }
    int* counter_;
  };

  // ---- statements ----
  // end_tokens: names that end this body (the current token is left on the matching name).
  std::vector<StmtPtr> Subparse(const std::vector<const char*>* end_tokens) {
    DepthGuard guard(this, &stmt_depth_, kMaxStmtDepth, "statements");
    if (end_tokens != nullptr) end_stack_.push_back(*end_tokens);
    std::vector<StmtPtr> body;
    while (Cur().type != Tok::kEof) {
      const Token& t = Cur();
      if (t.type == Tok::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kData;
        s->pos = Pos(t.offset);
        s->text = t.text;
        body.push_back(std::move(s));
        Next();
      } else if (t.type == Tok::kVariableBegin) {
        Next();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kOutput;
        s->pos = Pos(Cur().offset);
        s->expr = ParseTuple(false, true, nullptr, false);
        Expect(Tok::kVariableEnd, "end of print statement");
        body.push_back(std::move(s));
      } else if (t.type == Tok::kBlockBegin) {
        Next();
        if (end_tokens != nullptr && Cur().type == Tok::kName) {
          for (const char* e : *end_tokens) {
            if (Cur().text == e) {
              end_stack_.pop_back();
              return body;
            }
          }
        }
        ParseStatement(&body);
        Expect(Tok::kBlockEnd, "end of statement block");
      } else {
        Fail("internal parsing error");
      }
    }
    if (end_tokens != nullptr) end_stack_.pop_back();
    return body;
  }

  std::vector<StmtPtr> ParseStatements(const std::vector<const char*>& end_tokens,
                                       bool drop_needle) {
    SkipOp(":");
    Expect(Tok::kBlockEnd, "end of statement block");
    std::vector<StmtPtr> body = Subparse(&end_tokens);
    if (Cur().type == Tok::kEof) FailEof(&end_tokens);
    if (drop_needle) Next();
    return body;
  }

  [[noreturn]] void FailUnknownTag(const std::string& name, size_t offset,
                                   const std::vector<const char*>* extra) {
    std::vector<std::vector<const char*>> stack = end_stack_;
    if (extra != nullptr) stack.push_back(*extra);
    std::string msg =
        name.empty() ? "Unexpected end of template." : "Encountered unknown tag '" + name + "'.";
    if (!stack.empty()) {
      std::string looking;
      for (const char* e : stack.back())
        looking += (looking.empty() ? "'" : " or '") + std::string(e) + "'";
      bool expected = false;
      for (const auto& level : stack) {
        for (const char* e : level) expected |= name == e;
      }
      if (!name.empty() && expected) {
        msg +=
            " You probably made a nesting mistake. Jinja is expecting this tag, but currently "
            "looking for " +
            looking + ".";
      } else {
        msg += " Jinja was looking for the following tags: " + looking + ".";
      }
    }
    if (!tag_stack_.empty())
      msg += " The innermost block that needs to be closed is '" + tag_stack_.back() + "'.";
    Fail(msg, offset);
  }
  [[noreturn]] void FailEof(const std::vector<const char*>* end_tokens) {
    FailUnknownTag("", Cur().offset, end_tokens);
  }

  void ParseStatement(std::vector<StmtPtr>* body) {
    const Token& t = Cur();
    if (t.type != Tok::kName) Fail("tag name expected");
    const std::string name = t.text;
    static const std::set<std::string> kRefused = {"block", "extends",    "include", "import",
                                                   "from",  "autoescape", "call"};
    if (kRefused.count(name)) Fail("unsupported: the '" + name + "' tag");
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) Fail("'" + name + "' outside loop");
      auto s = std::make_unique<Stmt>();
      s->kind = name == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      s->pos = Pos(t.offset);
      Next();
      body->push_back(std::move(s));
      return;
    }
    tag_stack_.push_back(name);
    if (name == "for") {
      body->push_back(ParseFor());
    } else if (name == "if") {
      body->push_back(ParseIf());
    } else if (name == "set") {
      body->push_back(ParseSet());
    } else if (name == "macro") {
      body->push_back(ParseMacro());
    } else if (name == "with") {
      body->push_back(ParseWith());
    } else if (name == "filter") {
      body->push_back(ParseFilterBlock());
    } else if (name == "print") {
      Next();
      bool first = true;
      while (Cur().type != Tok::kBlockEnd) {
        if (!first) ExpectOp(",");
        first = false;
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kOutput;
        s->pos = Pos(Cur().offset);
        s->expr = ParseExpression(true);
        body->push_back(std::move(s));
      }
    } else if (name == "generation") {
      // transformers' AssistantTracker: the body is rendered by a caller() macro, so in its own
      // scope.
      auto s = std::make_unique<Stmt>();
      s->kind = StmtKind::kScope;
      s->pos = Pos(t.offset);
      Next();
      const int saved = loop_depth_;
      loop_depth_ = 0;
      s->body = ParseStatements({"endgeneration"}, true);
      loop_depth_ = saved;
      body->push_back(std::move(s));
    } else {
      tag_stack_.pop_back();
      FailUnknownTag(name, t.offset, nullptr);
    }
    tag_stack_.pop_back();
  }

  StmtPtr ParseFor() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kFor;
    s->pos = Pos(Cur().offset);
    ExpectNameValue("for");
    const std::vector<const char*> in_rule = {"in"};
    ExprPtr target = ParseTuple(true, true, &in_rule, false);
    s->target = ToTarget(*target);
    CheckNotLoop(s->target);
    ExpectNameValue("in");
    const std::vector<const char*> rec_rule = {"recursive"};
    s->expr = ParseTuple(false, false, &rec_rule, false);
    if (SkipName("if")) s->test = ParseExpression(true);
    if (CurName("recursive")) Fail("unsupported: recursive loops");
    ++loop_depth_;
    s->body = ParseStatements({"endfor", "else"}, false);
    --loop_depth_;
    if (Next().text != "endfor") s->else_body = ParseStatements({"endfor"}, true);
    return s;
  }

  void CheckNotLoop(const Target& t) {
    if (t.kind == Target::kName && t.name == "loop")
      Fail("Can't assign to special loop variable in for-loop target");
    for (const Target& i : t.items) CheckNotLoop(i);
  }

  StmtPtr ParseIf() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kIf;
    s->pos = Pos(Cur().offset);
    ExpectNameValue("if");
    Stmt* node = s.get();
    for (;;) {
      node->expr = ParseTuple(false, false, nullptr, false);
      node->body = ParseStatements({"elif", "else", "endif"}, false);
      const Token& t = Next();
      if (t.text == "elif") {
        // elif chains become nested ifs in the else branch: the same semantics, one node kind
        // fewer.
        auto inner = std::make_unique<Stmt>();
        inner->kind = StmtKind::kIf;
        inner->pos = Pos(Cur().offset);
        Stmt* next = inner.get();
        node->else_body.push_back(std::move(inner));
        node = next;
        continue;
      }
      if (t.text == "else") node->else_body = ParseStatements({"endif"}, true);
      break;
    }
    return s;
  }

  StmtPtr ParseSet() {
    auto s = std::make_unique<Stmt>();
    s->pos = Pos(Cur().offset);
    Next();
    s->target = ParseAssignTarget(true);
    if (SkipOp("=")) {
      s->kind = StmtKind::kAssign;
      s->expr = ParseTuple(false, true, nullptr, false);
      return s;
    }
    s->kind = StmtKind::kAssignBlock;
    s->filter = ParseFilter(nullptr, false);
    s->body = ParseStatements({"endset"}, true);
    return s;
  }

  StmtPtr ParseMacro() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kMacro;
    s->pos = Pos(Cur().offset);
    Next();
    s->text = ExpectName().text;
    ExpectOp("(");
    while (!CurOp(")")) {
      if (!s->params.empty()) ExpectOp(",");
      const std::string param = ExpectName().text;
      if (SkipOp("=")) {
        s->values.push_back(ParseExpression(true));
      } else if (!s->values.empty()) {
        Fail("non-default argument follows default argument");
      }
      s->params.push_back(param);
    }
    ExpectOp(")");
    const int saved = loop_depth_;
    loop_depth_ = 0;
    s->body = ParseStatements({"endmacro"}, true);
    loop_depth_ = saved;
    // As Jinja's compiler, accept extra arguments only when the body reads varargs / kwargs.
    for (const auto& st : s->body) ScanNames(*st, s.get());
    return s;
  }

  static void ScanNames(const Expr& e, Stmt* macro) {
    if (e.kind == ExprKind::kName) {
      macro->catch_varargs |= e.name == "varargs";
      macro->catch_kwargs |= e.name == "kwargs";
    }
    for (const auto& c : e.children) {
      if (c) ScanNames(*c, macro);
    }
    for (const auto& kw : e.kwargs) ScanNames(*kw.second, macro);
  }
  static void ScanNames(const Stmt& s, Stmt* macro) {
    for (const Expr* e : {s.expr.get(), s.test.get(), s.filter.get()}) {
      if (e != nullptr) ScanNames(*e, macro);
    }
    for (const auto& v : s.values) ScanNames(*v, macro);
    for (const auto& b : s.body) ScanNames(*b, macro);
    for (const auto& b : s.else_body) ScanNames(*b, macro);
  }

  StmtPtr ParseWith() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kWith;
    s->pos = Pos(Cur().offset);
    Next();
    while (Cur().type != Tok::kBlockEnd) {
      if (!s->targets.empty()) ExpectOp(",");
      s->targets.push_back(ParseAssignTarget(false));
      ExpectOp("=");
      s->values.push_back(ParseExpression(true));
    }
    s->body = ParseStatements({"endwith"}, true);
    return s;
  }

  StmtPtr ParseFilterBlock() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kFilterBlock;
    s->pos = Pos(Cur().offset);
    Next();
    s->filter = ParseFilter(nullptr, true);
    s->body = ParseStatements({"endfilter"}, true);
    return s;
  }

  Target ParseAssignTarget(bool with_namespace) {
    if (with_namespace && Look().type == Tok::kOperator && Look().text == ".") {
      Target t;
      t.kind = Target::kNamespaceAttr;
      t.pos = Pos(Cur().offset);
      t.name = ExpectName().text;
      Next();  // the dot
      t.attr = ExpectName().text;
      return t;
    }
    ExprPtr e = ParseTuple(true, true, nullptr, false);
    return ToTarget(*e);
  }

  Target ToTarget(const Expr& e) {
    Target t;
    t.pos = e.pos;
    if (e.kind == ExprKind::kName) {
      t.kind = Target::kName;
      t.name = e.name;
      return t;
    }
    if (e.kind == ExprKind::kTuple) {
      t.kind = Target::kTuple;
      for (const auto& c : e.children) t.items.push_back(ToTarget(*c));
      return t;
    }
    static const char* const kNames[] = {"const",   "name",     "getattr", "getitem", "slice",
                                         "call",    "filter",   "test",    "neg",     "pos",
                                         "not",     "binary",   "and",     "or",      "concat",
                                         "compare", "condexpr", "list",    "tuple",   "dict"};
    Fail(std::string("can't assign to '") + kNames[static_cast<int>(e.kind)] + "'", e.offset);
  }

  // ---- expressions ----
  ExprPtr ParseExpression(bool with_condexpr) {
    return with_condexpr ? ParseCondExpr() : ParseOr();
  }

  ExprPtr ParseCondExpr() {
    DepthGuard guard(this, &expr_depth_, kMaxExprDepth, "expressions");
    ExprPtr expr1 = ParseOr();
    while (CurName("if")) {
      const size_t at = Next().offset;
      ExprPtr expr2 = ParseOr();
      ExprPtr expr3;
      if (SkipName("else")) expr3 = ParseCondExpr();
      ExprPtr e = MakeExpr(ExprKind::kCondExpr, at);
      e->children.push_back(std::move(expr2));
      e->children.push_back(std::move(expr1));
      e->children.push_back(std::move(expr3));
      expr1 = Done(std::move(e));
    }
    return expr1;
  }

  ExprPtr ParseOr() {
    ExprPtr left = ParseAnd();
    while (CurName("or")) {
      ExprPtr e = MakeExpr(ExprKind::kOr, Next().offset);
      e->children.push_back(std::move(left));
      e->children.push_back(ParseAnd());
      left = Done(std::move(e));
    }
    return left;
  }

  ExprPtr ParseAnd() {
    ExprPtr left = ParseNot();
    while (CurName("and")) {
      ExprPtr e = MakeExpr(ExprKind::kAnd, Next().offset);
      e->children.push_back(std::move(left));
      e->children.push_back(ParseNot());
      left = Done(std::move(e));
    }
    return left;
  }

  ExprPtr ParseNot() {
    if (CurName("not")) {
      DepthGuard guard(this, &expr_depth_, kMaxExprDepth, "expressions");
      ExprPtr e = MakeExpr(ExprKind::kNot, Next().offset);
      e->children.push_back(ParseNot());
      return Done(std::move(e));
    }
    return ParseCompare();
  }

  ExprPtr ParseCompare() {
    const size_t at = Cur().offset;
    ExprPtr expr = ParseMath1();
    ExprPtr cmp;
    for (;;) {
      CmpOp op;
      if (CurOp("==")) {
        op = CmpOp::kEq;
      } else if (CurOp("!=")) {
        op = CmpOp::kNe;
      } else if (CurOp("<")) {
        op = CmpOp::kLt;
      } else if (CurOp("<=")) {
        op = CmpOp::kLe;
      } else if (CurOp(">")) {
        op = CmpOp::kGt;
      } else if (CurOp(">=")) {
        op = CmpOp::kGe;
      } else if (CurName("in")) {
        op = CmpOp::kIn;
      } else if (CurName("not") && IsName(Look(), "in")) {
        Next();
        op = CmpOp::kNotIn;
      } else {
        break;
      }
      Next();
      if (!cmp) {
        cmp = MakeExpr(ExprKind::kCompare, at);
        cmp->children.push_back(std::move(expr));
      }
      cmp->cmp_ops.push_back(op);
      cmp->children.push_back(ParseMath1());
    }
    return cmp ? Done(std::move(cmp)) : std::move(expr);
  }

  ExprPtr Binary(BinOp op, size_t at, ExprPtr left, ExprPtr right) {
    ExprPtr e = MakeExpr(ExprKind::kBinary, at);
    e->op = op;
    e->children.push_back(std::move(left));
    e->children.push_back(std::move(right));
    return Done(std::move(e));
  }

  ExprPtr ParseMath1() {
    ExprPtr left = ParseConcat();
    while (CurOp("+") || CurOp("-")) {
      const BinOp op = CurOp("+") ? BinOp::kAdd : BinOp::kSub;
      const size_t at = Next().offset;
      left = Binary(op, at, std::move(left), ParseConcat());
    }
    return left;
  }

  ExprPtr ParseConcat() {
    const size_t at = Cur().offset;
    ExprPtr first = ParseMath2();
    if (!CurOp("~")) return first;
    ExprPtr e = MakeExpr(ExprKind::kConcat, at);
    e->children.push_back(std::move(first));
    while (SkipOp("~")) e->children.push_back(ParseMath2());
    return Done(std::move(e));
  }

  ExprPtr ParseMath2() {
    ExprPtr left = ParsePow();
    for (;;) {
      BinOp op;
      if (CurOp("*")) {
        op = BinOp::kMul;
      } else if (CurOp("/")) {
        op = BinOp::kDiv;
      } else if (CurOp("//")) {
        op = BinOp::kFloorDiv;
      } else if (CurOp("%")) {
        op = BinOp::kMod;
      } else {
        break;
      }
      const size_t at = Next().offset;
      left = Binary(op, at, std::move(left), ParsePow());
    }
    return left;
  }

  ExprPtr ParsePow() {
    ExprPtr left = ParseUnary(true);
    while (CurOp("**")) {
      const size_t at = Next().offset;
      left = Binary(BinOp::kPow, at, std::move(left), ParseUnary(true));
    }
    return left;
  }

  ExprPtr ParseUnary(bool with_filter) {
    DepthGuard guard(this, &expr_depth_, kMaxExprDepth, "expressions");
    ExprPtr node;
    if (CurOp("-") || CurOp("+")) {
      node = MakeExpr(CurOp("-") ? ExprKind::kNeg : ExprKind::kPos, Cur().offset);
      Next();
      node->children.push_back(ParseUnary(false));
      node = Done(std::move(node));
    } else {
      node = ParsePrimary();
    }
    node = ParsePostfix(std::move(node));
    if (with_filter) node = ParseFilterExpr(std::move(node));
    return node;
  }

  ExprPtr ParsePrimary() {
    const Token& t = Cur();
    ExprPtr node;
    if (t.type == Tok::kName) {
      if (t.text == "true" || t.text == "false" || t.text == "True" || t.text == "False") {
        node = MakeExpr(ExprKind::kConst, t.offset);
        node->constant = Value::Bool(t.text == "true" || t.text == "True");
      } else if (t.text == "none" || t.text == "None") {
        node = MakeExpr(ExprKind::kConst, t.offset);
        node->constant = Value::None();
      } else {
        node = MakeExpr(ExprKind::kName, t.offset);
        node->name = t.text;
      }
      Next();
    } else if (t.type == Tok::kString) {
      node = MakeExpr(ExprKind::kConst, t.offset);
      std::string s = Next().text;
      while (Cur().type == Tok::kString) s += Next().text;  // adjacent literals concatenate
      node->constant = Value::String(std::move(s));
    } else if (t.type == Tok::kInteger || t.type == Tok::kFloat) {
      node = MakeExpr(ExprKind::kConst, t.offset);
      node->constant = t.type == Tok::kInteger ? Value::Int(t.integer) : Value::Float(t.number);
      Next();
    } else if (IsOp(t, "(")) {
      Next();
      node = ParseTuple(false, true, nullptr, true);
      ExpectOp(")");
      return node;
    } else if (IsOp(t, "[")) {
      node = MakeExpr(ExprKind::kList, t.offset);
      Next();
      while (!CurOp("]")) {
        if (!node->children.empty()) ExpectOp(",");
        if (CurOp("]")) break;
        node->children.push_back(ParseExpression(true));
      }
      ExpectOp("]");
    } else if (IsOp(t, "{")) {
      node = MakeExpr(ExprKind::kDict, t.offset);
      Next();
      while (!CurOp("}")) {
        if (!node->children.empty()) ExpectOp(",");
        if (CurOp("}")) break;
        node->children.push_back(ParseExpression(true));
        ExpectOp(":");
        node->children.push_back(ParseExpression(true));
      }
      ExpectOp("}");
    } else {
      Fail("unexpected '" + Describe(t) + "'");
    }
    return Done(std::move(node));
  }

  bool IsTupleEnd(const std::vector<const char*>* extra) const {
    const Tok t = Cur().type;
    if (t == Tok::kVariableEnd || t == Tok::kBlockEnd || CurOp(")")) return true;
    if (extra != nullptr) {
      for (const char* e : *extra) {
        if (CurName(e)) return true;
      }
    }
    return false;
  }

  ExprPtr ParseTuple(bool simplified, bool with_condexpr, const std::vector<const char*>* extra_end,
                     bool explicit_parentheses) {
    const size_t at = Cur().offset;
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    for (;;) {
      if (!args.empty()) ExpectOp(",");
      if (IsTupleEnd(extra_end)) break;
      args.push_back(simplified ? ParsePrimary() : ParseExpression(with_condexpr));
      if (CurOp(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parentheses) Fail("Expected an expression, got '" + Describe(Cur()) + "'");
    }
    ExprPtr e = MakeExpr(ExprKind::kTuple, at);
    e->children = std::move(args);
    return Done(std::move(e));
  }

  ExprPtr ParsePostfix(ExprPtr node) {
    for (;;) {
      if (CurOp(".") || CurOp("[")) {
        node = ParseSubscript(std::move(node));
      } else if (CurOp("(")) {
        node = ParseCall(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr ParseFilterExpr(ExprPtr node) {
    for (;;) {
      if (CurOp("|")) {
        node = ParseFilter(std::move(node), false);
      } else if (CurName("is")) {
        node = ParseTest(std::move(node));
      } else if (CurOp("(")) {
        node = ParseCall(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr ParseSubscript(ExprPtr node) {
    const Token& t = Next();
    if (IsOp(t, ".")) {
      const Token& attr = Cur();
      Next();
      if (attr.type == Tok::kName) {
        ExprPtr e = MakeExpr(ExprKind::kGetattr, t.offset);
        e->name = attr.text;
        e->children.push_back(std::move(node));
        return Done(std::move(e));
      }
      if (attr.type != Tok::kInteger) Fail("expected name or number", attr.offset);
      ExprPtr e = MakeExpr(ExprKind::kGetitem, t.offset);
      ExprPtr index = MakeExpr(ExprKind::kConst, attr.offset);
      index->constant = Value::Int(attr.integer);
      e->children.push_back(std::move(node));
      e->children.push_back(Done(std::move(index)));
      return Done(std::move(e));
    }
    // "["
    std::vector<ExprPtr> args;
    while (!CurOp("]")) {
      if (!args.empty()) ExpectOp(",");
      args.push_back(ParseSubscribed());
    }
    ExpectOp("]");
    ExprPtr e = MakeExpr(ExprKind::kGetitem, t.offset);
    e->children.push_back(std::move(node));
    if (args.size() == 1) {
      e->children.push_back(std::move(args[0]));
    } else {
      ExprPtr tuple = MakeExpr(ExprKind::kTuple, t.offset);
      tuple->children = std::move(args);
      e->children.push_back(Done(std::move(tuple)));
    }
    return Done(std::move(e));
  }

  ExprPtr ParseSubscribed() {
    const size_t at = Cur().offset;
    std::vector<ExprPtr> args;
    if (CurOp(":")) {
      Next();
      args.emplace_back();
    } else {
      ExprPtr node = ParseExpression(true);
      if (!CurOp(":")) return node;
      Next();
      args.push_back(std::move(node));
    }
    if (CurOp(":") || CurOp("]") || CurOp(",")) {
      args.emplace_back();
    } else {
      args.push_back(ParseExpression(true));
    }
    if (CurOp(":")) {
      Next();
      if (!CurOp("]") && !CurOp(",")) {
        args.push_back(ParseExpression(true));
      } else {
        args.emplace_back();
      }
    } else {
      args.emplace_back();
    }
    ExprPtr e = MakeExpr(ExprKind::kSlice, at);
    e->children = std::move(args);
    return Done(std::move(e));
  }

  // Fills e's children (after the first) and kwargs from "(args, key=value)".
  void ParseCallArgs(Expr* e) {
    const size_t at = Cur().offset;
    ExpectOp("(");
    bool require_comma = false;
    std::set<std::string> seen;
    while (!CurOp(")")) {
      if (require_comma) {
        ExpectOp(",");
        if (CurOp(")")) break;
      }
      if (CurOp("*") || CurOp("**")) Fail("unsupported: *args and **kwargs in calls");
      if (Cur().type == Tok::kName && IsOp(Look(), "=")) {
        const Token& key = Next();
        Next();
        if (!seen.insert(key.text).second)
          Fail("keyword argument repeated: " + key.text, key.offset);
        e->kwargs.emplace_back(key.text, ParseExpression(true));
      } else {
        if (!e->kwargs.empty()) Fail("invalid syntax for function call expression", at);
        e->children.push_back(ParseExpression(true));
      }
      require_comma = true;
    }
    ExpectOp(")");
  }

  ExprPtr ParseCall(ExprPtr node) {
    ExprPtr e = MakeExpr(ExprKind::kCall, Cur().offset);
    e->children.push_back(std::move(node));
    ParseCallArgs(e.get());
    return Done(std::move(e));
  }

  ExprPtr ParseFilter(ExprPtr node, bool start_inline) {
    while (CurOp("|") || start_inline) {
      if (!start_inline) Next();
      const Token& t = ExpectName();
      std::string name = t.text;
      while (CurOp(".")) {
        Next();
        name += "." + ExpectName().text;
      }
      // An unknown filter is a compile error in Jinja unless it sits in an if or a conditional
      // expression, where it fails only when run: CheckUnknown decides once the tree is complete.
      bool supported = false;
      const int index = FindFilter(name, &supported);
      ExprPtr e = MakeExpr(ExprKind::kFilter, t.offset);
      e->name = name;
      e->builtin = index;
      e->children.push_back(std::move(node));
      if (CurOp("(")) ParseCallArgs(e.get());
      node = Done(std::move(e));
      start_inline = false;
    }
    return node;
  }

  ExprPtr ParseTest(ExprPtr node) {
    const size_t at = Next().offset;  // "is"
    const bool negated = SkipName("not");
    const Token& t = ExpectName();
    std::string name = t.text;
    while (CurOp(".")) {
      Next();
      name += "." + ExpectName().text;
    }
    bool supported = false;
    const int index = FindTest(name, &supported);
    ExprPtr e = MakeExpr(ExprKind::kTest, at);
    e->name = name;
    e->name_offset = t.offset;
    e->builtin = index;
    e->children.push_back(std::move(node));
    if (CurOp("(")) {
      ParseCallArgs(e.get());
    } else {
      const Tok type = Cur().type;
      const bool arg_start = type == Tok::kName || type == Tok::kString || type == Tok::kInteger ||
                             type == Tok::kFloat || CurOp("(") || CurOp("[") || CurOp("{");
      if (arg_start && !CurName("else") && !CurName("or") && !CurName("and")) {
        if (CurName("is")) Fail("You cannot chain multiple tests with is");
        e->children.push_back(ParsePostfix(ParsePrimary()));
      }
    }
    ExprPtr result = Done(std::move(e));
    if (negated) {
      ExprPtr n = MakeExpr(ExprKind::kNot, at);
      n->children.push_back(std::move(result));
      result = Done(std::move(n));
    }
    return result;
  }

  const LexResult& lex_;
  const std::vector<Token>& toks_;
  size_t pos_offset_ = 0;  // Pos()'s cursor
  SourcePos pos_;
  size_t i_ = 0;
  std::vector<size_t> line_starts_;
  std::vector<std::vector<const char*>> end_stack_;
  std::vector<std::string> tag_stack_;
  int loop_depth_ = 0;
  int expr_depth_ = 0;
  int stmt_depth_ = 0;
};

}  // namespace

StatusOr<std::shared_ptr<const Template>> ParseTemplate(std::string_view source) {
  LexResult lex;
  SourceError lex_error;
  if (!Lex(source, &lex, &lex_error)) {
    return Status::InvalidArgument(
        LocatedMessage(PositionOf(lex.source, lex_error.offset), lex_error.message));
  }
  Parser parser(lex);
  try {
    auto t = std::make_shared<Template>();
    t->body = parser.ParseAll();
    return std::shared_ptr<const Template>(std::move(t));
  } catch (const ParseError& e) {
    return Status::InvalidArgument(LocatedMessage(parser.Pos(e.offset), e.message));
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("chat template: out of memory while parsing");
  }
}

}  // namespace blockkv::jinja
