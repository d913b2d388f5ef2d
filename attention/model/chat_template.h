// ChatTemplate: a Jinja2 interpreter for the subset of Jinja that Hugging Face chat templates use,
// rendering byte for byte what Python's Jinja2 renders the way `transformers` calls it:
//
//   ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
//                                 extensions=[jinja2.ext.loopcontrols])
//   filters["tojson"] = json.dumps(x, ensure_ascii=False, indent=, separators=, sort_keys=)
//   globals: raise_exception(msg), strftime_now(fmt), plus Jinja's range, namespace, dict
//
// tests/chat_template_jinja2_test.cc checks the equality against Python's Jinja2 on real templates
// and on templates of blockkv's own writing; docs of the supported subset are in the .cc files'
// headers.
//
// Supported: {{ }}, {% %} and {# #} with all of Jinja's whitespace control ("-", "+", trim_blocks,
// lstrip_blocks); raw blocks; set (names, tuples, namespace attributes, block set with filters);
// for (loop.index/index0/revindex/revindex0/first/last/length/previtem/nextitem/cycle/changed,
// tuple targets, dict.items(), loop filters, else, break/continue); if/elif/else; macros (with
// defaults, varargs, kwargs); with; filter blocks; transformers' {% generation %}; Python's
// semantics for None/bool/int/float/str/list/tuple/dict/range values (arithmetic, printf-style %,
// str() and repr(), slicing, `in`, chained comparisons), Jinja's Undefined; the filters, tests and
// str/dict/list methods chat templates call (see chat_template_filters.cc, _builtin_tests.cc,
// _methods.cc).
//
// Refused, with an error rather than an approximate render: the tags block, extends, include,
// import, from, autoescape, call and recursive loops (parse errors); filters Jinja has but blockkv
// lacks (safe, escape, format, groupby, batch, slice, truncate, wordwrap, ...: errors when they
// run); printing what Python prints with a memory address (generators, functions); integers beyond
// 64 bits; non-ASCII identifiers; the case predicates (str.isupper, ...) on non-ASCII text. As in
// Jinja, an unknown filter or test is a parse error, or an error when it runs if it sits in an if
// statement or a conditional expression.
//
// Thread safety: a ChatTemplate is immutable after Parse; Render is const and may be called from
// any number of threads at once. Copies share the parsed template.
//
// Errors are values, never exceptions: Parse and Render return InvalidArgument whose message names
// the line and column in the template ("chat template line 3, column 14: unknown filter 'foo'").
// Render's errors include what raise_exception() was called with, Python's runtime errors
// (UndefinedError, TypeError, ...) under their Python names, and ResourceExhausted when a limit in
// RenderLimits is hit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "db/status.h"

namespace blockkv {

namespace jinja {
struct Template;
}  // namespace jinja

// Bounds on one Render, so that a hostile template can neither hang nor exhaust memory. Hitting one
// is a ResourceExhausted error.
struct RenderLimits {
  // The rendered text and every string built on the way (by +, *, join, replace, tojson, ...).
  // Default: 64 MiB.
  size_t max_string_bytes = size_t{64} << 20;
  // Elements of any one list built on the way (by +, *, list, ...). Default: 4 Mi.
  size_t max_list_items = size_t{4} << 20;
  // Evaluation steps: one per expression or statement evaluated, plus one per 64 bytes of string
  // produced. Default: 200 M (seconds of work; real chat templates need thousands).
  uint64_t max_steps = 200'000'000;
  // Nesting of macro calls. Default: 64.
  int max_call_depth = 64;
};

// A parsed chat template. Parse once, render many times.
class ChatTemplate {
 public:
  // Parses `source` (UTF-8). Errors: InvalidArgument naming line and column for a syntax error, an
  // unknown or unsupported tag, filter or test, or source that is not valid UTF-8.
  static StatusOr<ChatTemplate> Parse(std::string_view source);

  // Renders the template. `context` is a JSON object whose keys become template variables:
  // messages, tools, documents, add_generation_prompt, bos_token, eos_token, ... Transformers
  // always passes `tools` and `documents` (null when absent); pass them as null to render as it
  // does, since a template can tell null from undefined.
  //
  // nlohmann::json keeps object keys sorted; templates that print dicts (tojson, str()) then print
  // them in that order. The ordered_json overload keeps the order of the source document, as
  // Python's json.loads does.
  //
  // Errors: InvalidArgument naming the position for runtime errors (including raise_exception's
  // message) or when `context` is not an object, holds invalid UTF-8 or an integer beyond int64;
  // ResourceExhausted when a limit is hit.
  StatusOr<std::string> Render(const nlohmann::json& context,
                               const RenderLimits& limits = {}) const;
  StatusOr<std::string> Render(const nlohmann::ordered_json& context,
                               const RenderLimits& limits = {}) const;

 private:
  explicit ChatTemplate(std::shared_ptr<const jinja::Template> t) : template_(std::move(t)) {}
  std::shared_ptr<const jinja::Template> template_;
};

}  // namespace blockkv
