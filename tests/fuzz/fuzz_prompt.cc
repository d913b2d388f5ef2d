// libFuzzer target: prompt files and corpus JSON Lines (attention/prompt_file.h).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "attention/prompt_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto p = blockkv::ParsePrompt(text, "fuzz");
  if (p.ok() && p->final_tokens.empty()) abort();
  auto c = blockkv::ParseCorpus(text, "fuzz");
  if (c.ok())
    for (const auto& b : *c)
      if (b.tokens.empty()) abort();
  return 0;
}
