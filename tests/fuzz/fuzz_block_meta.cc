// libFuzzer target: the block metadata decoder (db/block_store_impl.h), which reads values from disk.
#include <cstdint>
#include <string_view>

#include "db/block_store_impl.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  blockkv::BlockId id;
  auto m = blockkv::DecodeMeta(id, std::string_view(reinterpret_cast<const char*>(data), size));
  if (m.ok()) (void)blockkv::EncodeMeta(*m);
  return 0;
}
