// libFuzzer target: chat templates (attention/model/chat_template.h). Any input must parse or fail
// with InvalidArgument, and render over a small fixed conversation within tight limits without
// crashing, hanging or growing memory: errors are InvalidArgument (template errors) or
// ResourceExhausted (a limit), and the output respects the string limit.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "attention/model/chat_template.h"

namespace {

const nlohmann::ordered_json& Context() {
  static const nlohmann::ordered_json context = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": " Be brief. "},
      {"role": "user", "content": "Hi <think>x</think> ü 😀"},
      {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": {"a": 1, "b": [2.5, null, true]}}}]},
      {"role": "tool", "content": "{\"ok\": true}"}
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "documents": null, "add_generation_prompt": true, "enable_thinking": false,
    "bos_token": "<s>", "eos_token": "</s>"
  })");
  return context;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16 * 1024) return 0;
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  auto t = blockkv::ChatTemplate::Parse(source);
  if (!t.ok()) {
    if (!t.status().IsInvalidArgument() && !t.status().IsResourceExhausted()) abort();
    return 0;
  }
  blockkv::RenderLimits limits;
  limits.max_string_bytes = 1 << 20;
  limits.max_list_items = 1 << 16;
  limits.max_steps = 200000;
  limits.max_call_depth = 32;
  auto out = t->Render(Context(), limits);
  if (!out.ok()) {
    if (!out.status().IsInvalidArgument() && !out.status().IsResourceExhausted()) abort();
    return 0;
  }
  if (out->size() > limits.max_string_bytes) abort();
  return 0;
}
