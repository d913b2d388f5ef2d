// libFuzzer target: the block metadata decoder (db/block_store_impl.h), which reads values from disk.
#include <xxhash.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "db/block_store_impl.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Half the inputs get a valid trailing checksum, so mutations reach the field parsing.
  std::string copy(reinterpret_cast<const char*>(data), size);
  if (size >= 8 && (data[0] & 1)) {
    const uint64_t sum = XXH3_64bits(copy.data(), size - 8);
    std::memcpy(copy.data() + size - 8, &sum, 8);
  }
  blockkv::BlockId id;
  auto m = blockkv::DecodeMeta(id, copy);
  if (m.ok()) (void)blockkv::EncodeMeta(*m);
  return 0;
}
