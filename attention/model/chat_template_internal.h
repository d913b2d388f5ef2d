// Private to the chat template interpreter (attention/model/chat_template*.cc): the value model,
// the tokens, the syntax tree and the helpers the lexer, parser, evaluator and builtins share.
//
// Values model Python's objects as Jinja2 sees them. Immutable containers (str, list, tuple, dict,
// range, dict views) are shared by pointer and never changed after construction, which is safe
// because the immutable sandbox forbids every mutating method a template could call. Namespaces,
// iterators (what map/select/reverse return) and loop objects are mutable and shared, as in Python.
// A Value and everything it points to belong to one Render call (one thread); only constants in the
// syntax tree are shared between threads, and those are never mutated.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "attention/model/chat_template.h"
#include "db/status.h"

namespace blockkv::jinja {

// ------------------------------------------------------------------------------------------------
// Values

enum class Kind : uint8_t {
  kUndefined,
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kSeq,  // list, tuple, range, dict views
  kDict,
  kNamespace,  // jinja2.utils.Namespace
  kLoop,       // jinja2.runtime.LoopContext
  kCallable,   // builtin function, bound method, macro
  kIterator,   // a generator or list_reverseiterator: consumed by iteration
};

enum class SeqKind : uint8_t { kList, kTuple, kRange, kDictKeys, kDictValues, kDictItems };

struct HeapObject {
  virtual ~HeapObject() = default;
};

class Value;
struct StringData;
struct SeqData;
struct DictData;
struct NamespaceData;
struct LoopData;
struct CallableData;
struct IteratorData;
struct UndefinedData;

class Value {
 public:
  Value() = default;  // a plain Undefined
  static Value None() { return Value(Kind::kNone); }
  static Value Bool(bool b) {
    Value v(Kind::kBool);
    v.i_ = b ? 1 : 0;
    return v;
  }
  static Value Int(int64_t i) {
    Value v(Kind::kInt);
    v.i_ = i;
    return v;
  }
  static Value Float(double f) {
    Value v(Kind::kFloat);
    v.f_ = f;
    return v;
  }
  static Value String(std::string s);
  static Value List(std::vector<Value> items, SeqKind kind = SeqKind::kList);
  static Value Range(int64_t start, int64_t stop,
                     int64_t step);  // step != 0, length checked by caller
  static Value MakeDict(std::shared_ptr<DictData> d);
  // Undefined with Jinja's message parts: `hint` wins; else "'name' is undefined" when `owner` is
  // empty, else "'owner' has no attribute 'name'" (or "owner has no element name" when
  // !name_is_str).
  static Value Undefined(std::string hint, std::string owner = "", std::string name = "",
                         bool name_is_str = true, bool unsafe = false);
  static Value UndefinedName(const std::string& name) { return Undefined("", "", name); }
  static Value Heap(Kind kind, std::shared_ptr<HeapObject> h) {
    Value v(kind);
    v.heap_ = std::move(h);
    return v;
  }

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_seq() const { return kind_ == Kind::kSeq; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  // int or bool: what Python accepts where it needs an integer (bool is a subclass of int).
  bool is_integral() const { return kind_ == Kind::kInt || kind_ == Kind::kBool; }
  bool is_number() const { return is_integral() || kind_ == Kind::kFloat; }

  bool boolean() const { return i_ != 0; }
  int64_t integer() const { return i_; }  // also for bool
  double number() const { return kind_ == Kind::kFloat ? f_ : static_cast<double>(i_); }
  const std::string& str() const;
  const SeqData& seq() const;
  const DictData& dict() const;
  NamespaceData& ns() const;
  LoopData& loop() const;
  const CallableData& callable() const;
  IteratorData& iter() const;
  const UndefinedData* undefined_data() const;  // null for a plain Undefined
  const HeapObject* heap() const { return heap_.get(); }
  SeqKind seq_kind() const;

 private:
  explicit Value(Kind k) : kind_(k) {}
  Kind kind_ = Kind::kUndefined;
  union {
    int64_t i_ = 0;
    double f_;
  };
  std::shared_ptr<HeapObject> heap_;
};

struct StringData : HeapObject {
  explicit StringData(std::string v) : s(std::move(v)) {}
  std::string s;
};

struct SeqData : HeapObject {
  SeqKind kind = SeqKind::kList;
  int nesting = 1;  // 1 + the deepest nesting of an item (0 for scalars)
  std::vector<Value> items;
  int64_t start = 0, stop = 0, step = 1;  // kRange: its arguments, for repr
};

struct DictData : HeapObject {
  int nesting = 1;                             // set by Value::MakeDict
  std::vector<std::pair<Value, Value>> items;  // insertion order, as Python's dict
  std::unordered_map<std::string, size_t> str_index;
  // Index of `key` in items, or -1 (also when `key` is unhashable: check Hashable first).
  ptrdiff_t Find(const Value& key) const;
  const Value* FindStr(const std::string& key) const;
  // Inserts or replaces (keeping the first key, as Python does).
  void Set(Value key, Value value);
};

struct NamespaceData : HeapObject {
  std::vector<std::pair<std::string, Value>> attrs;
  Value* Find(const std::string& name);
};

struct LoopData : HeapObject {
  std::shared_ptr<const std::vector<Value>> items;
  int64_t index0 = 0;
  int64_t depth0 = 0;
  bool has_changed_value = false;
  Value changed_value;
};

enum class Builtin : uint8_t {
  kRange,
  kNamespace,
  kDict,
  kRaiseException,
  kStrftimeNow,
  kMethod,       // a method of `receiver`, named `name`
  kLoopCycle,    // loop.cycle of `receiver`
  kLoopChanged,  // loop.changed of `receiver`
  kMacro,
  kUnsupported,  // Jinja globals blockkv refuses (lipsum, cycler, joiner)
};

struct Stmt;
struct Scope;
struct CallableData : HeapObject {
  Builtin kind = Builtin::kRange;
  std::string name;
  Value receiver;
  const Stmt* macro = nullptr;   // kMacro: the definition, owned by the Template
  std::weak_ptr<Scope> closure;  // kMacro: the scope it was defined in
};

// A Python iterator. Its items are computed when it is made (filters are pure), but an error met
// while computing item k is kept and raised only when item k is consumed, as Python's lazy
// generators do.
struct IteratorData : HeapObject {
  std::vector<Value> items;
  size_t pos = 0;
  std::optional<Status> error;  // raised on consuming item `items.size()`
  const char* type_name = "generator";
};

struct UndefinedData : HeapObject {
  std::string hint, owner, name;
  bool name_is_str = true;
  bool unsafe = false;  // a SecurityError-carrying undefined (the sandbox hid a mutating method)
};

// Python's type name for messages ("str", "list", "NoneType", ...).
const char* TypeName(const Value& v);
// Jinja's object_type_repr: "None", "dict object", "str object", ...
std::string ObjectTypeRepr(const Value& v);
// The message an operation on this Undefined raises with ("'x' is undefined", ...).
std::string UndefinedMessage(const Value& v);

// ------------------------------------------------------------------------------------------------
// Errors. Runtime errors are built without a position and located by the evaluator.

inline Status TypeError(const std::string& msg) {
  return Status::InvalidArgument("TypeError: " + msg);
}
inline Status ValueError(const std::string& msg) {
  return Status::InvalidArgument("ValueError: " + msg);
}
Status UndefinedError(const Value& undefined);
Status Unsupported(const std::string& what);  // "unsupported: <what>"

// ------------------------------------------------------------------------------------------------
// Python semantics shared by the evaluator and the builtins (chat_template_value.cc).

bool Truthy(const Value& v);
// str(v) as Python prints it, appended to *out. Errors for values whose str() names a memory
// address.
Status AppendStr(const Value& v, std::string* out);
// repr(v), appended to *out.
Status AppendRepr(const Value& v, std::string* out);
// Python's repr of a float ("0.1", "1e+16", "inf").
std::string FloatRepr(double d);
bool Equal(const Value& a, const Value& b);
// a < b as Python; TypeError when the types do not order.
StatusOr<bool> Less(const Value& a, const Value& b);
bool Hashable(const Value& v);
// The items of an iterable, as iter() gives them (str: code points, dict: keys, iterators:
// consumed). TypeError for non-iterables; Undefined gives none.
StatusOr<std::vector<Value>> Iterate(const Value& v);
// len(v); TypeError when there is none.
StatusOr<int64_t> Length(const Value& v);

// JSON in and out.
template <typename Json>
StatusOr<Value> FromJson(const Json& j, int depth = 0);
struct JsonOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;  // when has_indent
  std::string item_sep = ", ", key_sep = ": ";
  bool sort_keys = false;
};
Status ToJson(const Value& v, const JsonOptions& opts, size_t max_bytes, std::string* out);

// ------------------------------------------------------------------------------------------------
// UTF-8 and Python's str operations on code points (chat_template_value.cc,
// chat_template_unicode.cc).

namespace text {
// Decodes the code point at s[*i] (valid UTF-8) and advances *i.
uint32_t Next(std::string_view s, size_t* i);
void Append(uint32_t cp, std::string* out);
size_t FindInvalid(std::string_view s);  // npos when valid UTF-8
size_t CountCodePoints(std::string_view s);
// Byte offset of code point `n` (n <= count).
size_t OffsetOfCodePoint(std::string_view s, size_t n);
std::vector<uint32_t> Decode(std::string_view s);
std::string Encode(const std::vector<uint32_t>& cps, size_t begin = 0, size_t end = SIZE_MAX);
bool IsSpace(uint32_t cp);      // str.isspace / Python's \s
bool IsPrintable(uint32_t cp);  // str.isprintable
// Python's str.upper / lower / title / capitalize (full case mappings, final sigma).
std::string Upper(std::string_view s);
std::string Lower(std::string_view s);
std::string Title(std::string_view s);       // str.title
std::string Capitalize(std::string_view s);  // str.capitalize
bool IsCased(uint32_t cp);
bool IsCaseIgnorable(uint32_t cp);
// Appends the case mapping of cp ('U', 'L' or 'T') to *out.
void MapCase(uint32_t cp, char which, std::vector<uint32_t>* out);
}  // namespace text

// ------------------------------------------------------------------------------------------------
// Tokens (chat_template_lexer.cc)

struct SourcePos {
  int line = 1;
  int column = 1;
};

enum class Tok : uint8_t {
  kData,
  kVariableBegin,
  kVariableEnd,
  kBlockBegin,
  kBlockEnd,
  kName,
  kString,
  kInteger,
  kFloat,
  kOperator,
  kEof,
};

struct Token {
  Tok type = Tok::kEof;
  std::string text;  // data, name, decoded string, operator spelling
  int64_t integer = 0;
  double number = 0;
  size_t offset = 0;  // byte offset in the normalized source
};

// The normalized source (newlines as "\n", one trailing newline dropped) and its tokens.
struct LexResult {
  std::string source;
  std::vector<Token> tokens;
};
// An error at a byte offset of the normalized source, for the caller to turn into line and column.
struct SourceError {
  size_t offset = 0;
  std::string message;
};
// Returns false and fills *error on a lexical error.
bool Lex(std::string_view source, LexResult* result, SourceError* error);
std::string NormalizeNewlines(std::string_view source);
SourcePos PositionOf(std::string_view source, size_t offset);
std::string LocatedMessage(const SourcePos& pos, const std::string& message);

// ------------------------------------------------------------------------------------------------
// Syntax tree (chat_template_parser.cc builds it, chat_template_eval.cc runs it)

enum class ExprKind : uint8_t {
  kConst,
  kName,
  kGetattr,  // children[0].name
  kGetitem,  // children[0][children[1]]
  kSlice,    // children: start, stop, step (each may be null)
  kCall,     // children[0](children[1:], kwargs)
  kFilter,   // children[0] | name(children[1:], kwargs); children[0] null in filter blocks
  kTest,     // children[0] is name(children[1:], kwargs)
  kNeg,
  kPos,
  kNot,
  kBinary,
  kAnd,
  kOr,
  kConcat,    // children joined by ~
  kCompare,   // children[0] ops[0] children[1] ops[1] children[2] ...
  kCondExpr,  // children[1] if children[0] else children[2] (may be null)
  kList,
  kTuple,
  kDict,  // children: k0, v0, k1, v1, ...
};

enum class BinOp : uint8_t { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow };
enum class CmpOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn };

struct Expr {
  ExprKind kind = ExprKind::kConst;
  SourcePos pos;
  size_t offset = 0;           // in the normalized source, for parse errors
  size_t name_offset = 0;      // kTest: where its name is
  int depth = 1;               // height of this subtree
  Value constant;              // kConst
  std::string name;            // kName, kGetattr, kFilter, kTest
  int builtin = -1;            // kFilter / kTest: index into the builtin table, -1 unknown
  BinOp op = BinOp::kAdd;      // kBinary
  std::vector<CmpOp> cmp_ops;  // kCompare
  std::vector<std::unique_ptr<Expr>> children;
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;
};

struct Target {
  enum Kind : uint8_t { kName, kTuple, kNamespaceAttr } kind = kName;
  SourcePos pos;
  std::string name, attr;
  std::vector<Target> items;
};

enum class StmtKind : uint8_t {
  kData,         // text
  kOutput,       // {{ expr }}
  kIf,           // expr ? body : else_body
  kFor,          // for target in expr [if test]: body else else_body
  kAssign,       // set target = expr
  kAssignBlock,  // set target [| filter] ... endset
  kBreak,
  kContinue,
  kMacro,        // name(params = defaults) body
  kScope,        // a body run in an inner scope ({% generation %})
  kWith,         // with targets = values: body
  kFilterBlock,  // filter f ... endfilter
};

struct Stmt {
  StmtKind kind = StmtKind::kData;
  SourcePos pos;
  std::string text;              // kData; kMacro: the name
  std::unique_ptr<Expr> expr;    // output / if test / for iterable / assigned value
  std::unique_ptr<Expr> test;    // for's loop filter
  std::unique_ptr<Expr> filter;  // kAssignBlock / kFilterBlock: a filter chain on a null operand
  Target target;                 // for / set
  std::vector<Target> targets;   // kWith
  std::vector<std::unique_ptr<Expr>> values;  // kWith values; kMacro defaults (aligned to the end)
  std::vector<std::string> params;            // kMacro
  bool catch_varargs = false, catch_kwargs = false;  // kMacro: the body reads varargs / kwargs
  std::vector<std::unique_ptr<Stmt>> body, else_body;
};

struct Template {
  std::vector<std::unique_ptr<Stmt>> body;
};

// Parses a template. Errors: InvalidArgument naming line and column.
StatusOr<std::shared_ptr<const Template>> ParseTemplate(std::string_view source);

// Folds constants and checks filter and test names as Jinja's compiler does
// (chat_template_compile.cc). Returns false and fills *error on a compile error.
bool Compile(std::vector<std::unique_ptr<Stmt>>* body, SourceError* error);

// ------------------------------------------------------------------------------------------------
// Evaluation (chat_template_eval.cc)

struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
};

// A variable scope: the template's top level, one loop iteration, a macro call, a set or with
// block. Scopes are shared_ptrs because a macro keeps a weak reference to the scope it was defined
// in.
struct Scope : std::enable_shared_from_this<Scope> {
  std::unordered_map<std::string, Value> vars;
  Scope* parent = nullptr;
  const Value* Find(const std::string& name) const;
};

enum class Flow : uint8_t { kNormal, kBreak, kContinue };

// Runs one render. Not thread-safe; every Render call makes its own.
class Evaluator {
 public:
  explicit Evaluator(const RenderLimits& limits) : limits_(limits) {}
  ~Evaluator();
  Evaluator(const Evaluator&) = delete;
  Evaluator& operator=(const Evaluator&) = delete;

  StatusOr<std::string> Render(const Template& t, Value context);

  // For the builtins.
  const RenderLimits& limits() const { return limits_; }
  // Counts `n` steps of work; ResourceExhausted past the limit.
  Status Charge(uint64_t n = 1);
  // ResourceExhausted when a string of `bytes` passes the limit; charges bytes/64 steps.
  Status CheckString(size_t bytes);
  Status CheckList(size_t items);
  // True while folding constants at parse time (FoldConstant), where slices go through the
  // sandbox's getitem (Undefined) instead of Python's subscript (TypeError).
  bool folding() const { return folding_; }
  // Evaluates `e` as Jinja's Expr.as_const does: nullopt on a name, a call, a filter that needs the
  // context, or any error.
  std::optional<Value> Fold(const Expr& e);
  // Keeps namespaces and loop objects, whose references can form cycles, to break them at the end.
  void Track(std::shared_ptr<HeapObject> mutable_object);
  // Calls a callable value (builtin, method, loop.cycle, macro).
  StatusOr<Value> Call(const Value& callee, CallArgs args);

 private:
  StatusOr<Flow> Exec(const std::vector<std::unique_ptr<Stmt>>& body, Scope* scope,
                      std::string* out);
  StatusOr<Flow> ExecOne(const Stmt& s, Scope* scope, std::string* out);
  StatusOr<Flow> ExecFor(const Stmt& s, Scope* scope, std::string* out);
  Status ExecMacroDef(const Stmt& s, Scope* scope);
  StatusOr<Value> Eval(const Expr& e, Scope* scope);
  StatusOr<Value> EvalCall(const Expr& e, Scope* scope);
  StatusOr<CallArgs> EvalArgs(const Expr& e, size_t first, Scope* scope);
  StatusOr<Value> CallMacro(const CallableData& macro, CallArgs args);
  Status Assign(const Target& t, const Value& v, Scope* scope);
  Value Lookup(const std::string& name, const Scope* scope) const;
  std::shared_ptr<Scope> NewScope(Scope* parent);
  Status AppendOutput(const Value& v, std::string* out);

  const RenderLimits& limits_;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  Value context_;
  std::vector<std::shared_ptr<HeapObject>> tracked_;
  const Value* block_operand_ = nullptr;  // the body of a set or filter block, for its filter chain
  bool folding_ = false;
};

// Jinja's Expr.as_const for the parser's constant folding (chat_template_eval.cc).
std::optional<Value> FoldConstant(const Expr& e);

// Python operators (chat_template_eval.cc).
StatusOr<Value> BinaryOp(Evaluator& ev, BinOp op, const Value& a, const Value& b);
StatusOr<bool> Compare(CmpOp op, const Value& a, const Value& b);
StatusOr<bool> Contains(const Value& container, const Value& item);
// Nesting of lists and dicts in v (0 for scalars).
int Nesting(const Value& v);
// A stable merge sort whose comparison may fail (Python's sorted() with a TypeError).
Status StableSort(std::vector<Value>* items,
                  const std::function<StatusOr<bool>(const Value&, const Value&)>& less);

// ------------------------------------------------------------------------------------------------
// Builtins (chat_template_filters.cc, chat_template_builtin_tests.cc, chat_template_methods.cc),
// called by the evaluator.

// The index of a filter / test by name, or -1 when Jinja2 has none; *supported is false for those
// blockkv refuses.
int FindFilter(std::string_view name, bool* supported);
int FindTest(std::string_view name, bool* supported);
StatusOr<Value> CallFilter(Evaluator& ev, int index, const Value& operand, CallArgs args);
StatusOr<bool> CallTest(Evaluator& ev, int index, const Value& operand, CallArgs args);

// Binds Python call arguments to parameter names: (*out)[i] is the argument for names[i], or
// nullopt. TypeError for unknown or repeated keywords, too many positionals or a missing required
// parameter.
Status BindArgs(const char* function, CallArgs& args, std::initializer_list<const char*> names,
                size_t required, std::vector<std::optional<Value>>* out);

// Attribute and item access with the immutable sandbox's rules: a.b tries the attribute (a method),
// then the item; a[b] the item, then the attribute. Missing ones are Undefined.
StatusOr<Value> GetAttr(const Value& obj, const std::string& name);
StatusOr<Value> GetItem(const Value& obj, const Value& key);
// Only the attribute (the attr filter).
StatusOr<Value> GetAttrOnly(const Value& obj, const std::string& name);
StatusOr<Value> Slice(Evaluator& ev, const Value& obj, const Value& start, const Value& stop,
                      const Value& step);
// Calls a bound method (Builtin::kMethod).
StatusOr<Value> CallMethod(Evaluator& ev, const CallableData& method, CallArgs args);

// Python's printf-style `format % args`.
StatusOr<Value> PercentFormat(Evaluator& ev, const std::string& format, const Value& args);

// Python's str operations (chat_template_strings.cc).
std::string StripChars(const std::string& s, const std::string* chars, bool left, bool right);
std::vector<std::string> SplitLines(const std::string& s, bool keepends);
std::string Replace(const std::string& s, const std::string& old, const std::string& with,
                    int64_t count);
Status ExpectStr(const char* what, const Value& v);  // TypeError "<what> must be str, not <type>"
// Byte range [*b, *e) of s[start:end] in code points (*b == npos when empty); *cp_begin is start.
Status ByteRange(const std::string& s, const std::optional<Value>& start,
                 const std::optional<Value>& end, size_t* b, size_t* e, int64_t* cp_begin);
StatusOr<Value> Split(Evaluator& ev, const std::string& s, const std::optional<Value>& sep,
                      const std::optional<Value>& maxsplit, bool from_right);
// str.center / ljust / rjust: how is 'c', 'l' or 'r'.
StatusOr<Value> Pad(Evaluator& ev, const std::string& s, const std::optional<Value>& width,
                    const std::optional<Value>& fillchar, char how);
StatusOr<Value> StrFormat(Evaluator& ev, const std::string& format, const CallArgs& args);
bool AllCps(const std::string& s,
            bool (*pred)(uint32_t));  // non-empty and pred holds for every code point

}  // namespace blockkv::jinja
