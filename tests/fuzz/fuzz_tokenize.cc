// libFuzzer target: encoding arbitrary bytes with a byte-level tokenizer (the synthetic Llama 3 style
// one, attention/model/synthetic_tokenizer.h). Invalid UTF-8 must be an InvalidArgument error; valid
// text must decode back to itself exactly (byte-level BPE loses nothing), and the batch API must agree.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "attention/model/synthetic_tokenizer.h"
#include "attention/model/tokenizer.h"
#include "attention/model/utf8.h"

namespace {

const blockkv::Tokenizer& Get() {
  static std::unique_ptr<blockkv::Tokenizer> t = [] {
    const std::string dir = std::filesystem::temp_directory_path() / ("blockkv-fuzz-tok-" + std::to_string(getpid()));
    if (!blockkv::WriteSyntheticTokenizer(blockkv::SyntheticTokenizerStyle::kLlama3, 512, -1, dir).ok()) abort();
    auto r = blockkv::Tokenizer::Load(dir);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (!r.ok()) abort();
    return std::move(r).value();
  }();
  return *t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const blockkv::Tokenizer& t = Get();
  auto ids = t.Encode(text, false);
  if (!blockkv::utf8::IsValid(text)) {
    if (ids.ok() || !ids.status().IsInvalidArgument()) abort();
    return 0;
  }
  if (!ids.ok()) abort();
  auto back = t.Decode(*ids, false);
  if (!back.ok() || *back != text) abort();
  std::vector<std::vector<int32_t>> batch;
  const std::string texts[2] = {text, text};
  if (!t.EncodeBatch(texts, false, &batch, 1).ok() || batch[0] != *ids || batch[1] != *ids) abort();
  return 0;
}
