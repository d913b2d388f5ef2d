// libFuzzer target: prompt files (text, seed and token-id prompts, one or JSON Lines) and corpus JSON
// Lines (attention/prompt_file.h).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "attention/prompt_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto p = blockkv::ParsePrompts(text, "fuzz");
  if (p.ok())
    for (const auto& one : *p) {
      if (one.kind == blockkv::PromptFile::Kind::kTokenIds && one.final_tokens.empty()) abort();
      if (one.kind == blockkv::PromptFile::Kind::kText && one.text.question.empty()) abort();
      if (one.kind == blockkv::PromptFile::Kind::kTextBlocks && one.text_blocks.blocks.empty()) abort();
    }
  auto c = blockkv::ParseCorpus(text, "fuzz");
  if (c.ok())
    for (const auto& b : *c)
      if (b.tokens.empty() && b.text.empty()) abort();
  return 0;
}
