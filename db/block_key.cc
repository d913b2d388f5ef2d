#include "db/block_key.h"

#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

namespace blockkv {

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string Hash128::ToHex() const {
  static const char* kDigits = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return out;
}

std::optional<Hash128> Hash128::FromHex(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  Hash128 h;
  for (int i = 0; i < 16; ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    h.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return h;
}

Hash128 Hash128::FromXXH128(uint64_t high, uint64_t low) {
  Hash128 h;
  for (int i = 0; i < 8; ++i) {
    h.bytes[i] = static_cast<uint8_t>(high >> (56 - 8 * i));
    h.bytes[8 + i] = static_cast<uint8_t>(low >> (56 - 8 * i));
  }
  return h;
}

Hash128 Hash128::FromBytes(std::string_view b) {
  Hash128 h;
  std::memcpy(h.bytes.data(), b.data(), std::min<size_t>(16, b.size()));
  return h;
}

bool Hash128::IsZero() const {
  for (uint8_t b : bytes)
    if (b) return false;
  return true;
}

Hash128 HashBytes(const void* data, size_t n) {
  XXH128_hash_t h = XXH3_128bits(data, n);
  return Hash128::FromXXH128(h.high64, h.low64);
}

BlockId ComputeBlockId(const ModelFingerprint& model, std::span<const int32_t> tokens) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_128bits_reset(state);
  XXH3_128bits_update(state, model.bytes.data(), model.bytes.size());
  // Token ids as little-endian int32 (x86 and arm64 are little-endian; checked at build time).
  static_assert(std::endian::native == std::endian::little, "blockkv assumes a little-endian host");
  XXH3_128bits_update(state, tokens.data(), tokens.size() * sizeof(int32_t));
  XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  return BlockId(Hash128::FromXXH128(h.high64, h.low64));
}

}  // namespace blockkv
