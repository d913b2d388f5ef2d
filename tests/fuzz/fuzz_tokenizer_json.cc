// libFuzzer target: tokenizer.json loading (attention/model/tokenizer.h). Whatever the bytes, loading
// returns an error or a tokenizer; a tokenizer that loads encodes and decodes a few texts without
// crashing.
#include <cstdint>
#include <string_view>

#include "attention/model/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto t = blockkv::Tokenizer::FromJson(text, "", "", "fuzz");
  if (!t.ok()) return 0;
  for (std::string_view s : {"", "Hello world! 123", "  \t\n<s>x</s> \xC3\xA9\xE6\x97\xA5"}) {
    auto ids = (*t)->Encode(s, true);
    if (ids.ok()) (void)(*t)->Decode(*ids, false);
  }
  return 0;
}
