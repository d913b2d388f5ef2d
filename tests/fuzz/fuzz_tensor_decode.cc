// libFuzzer target: the tensor value decoder (db/codec.h). Any input must decode to an error or to bytes
// whose checksum matched; never crash, never read or write out of bounds.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "db/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Half the inputs get a valid header checksum, so mutations reach the payload decoding instead of
  // stopping at the header check.
  std::string copy(reinterpret_cast<const char*>(data), size);
  if (size >= blockkv::kValueHeaderSize && (data[size - 1] & 1)) {
    const uint32_t sum = blockkv::TensorHeaderChecksum(copy.data());
    std::memcpy(copy.data() + 40, &sum, 4);
  }
  std::string_view value(copy);
  auto h = blockkv::ParseTensorHeader(value);
  if (!h.ok() || h->raw_bytes() > (64u << 20)) return 0;
  std::vector<uint8_t> out(h->raw_bytes());
  // Decode into two halves when possible (as the store does for K and V), else one piece.
  const size_t esize = blockkv::DTypeSize(h->dtype);
  if (h->dims[0] == 2 && out.size() % (2 * esize) == 0) {
    blockkv::MutablePiece p[2] = {{out.data(), out.size() / 2}, {out.data() + out.size() / 2, out.size() / 2}};
    (void)blockkv::DecodeTensor(value, p);
  } else {
    blockkv::MutablePiece p{out.data(), out.size()};
    (void)blockkv::DecodeTensor(value, {&p, 1});
  }
  return 0;
}
