// Identity of models and blocks.
//
// A ModelFingerprint is an opaque 128-bit value that the runtime derives from a model's architecture and
// weights (attention/model_config.h); db/ treats it as bytes. A BlockId is XXH3-128 over
// (fingerprint, token ids), so a block of one model can never be served to another (DESIGN §4).
//
// Threads: value types and pure functions, safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>

namespace blockkv {

// 16 bytes, stored and printed big-endian (the high 64 bits of the XXH3-128 first).
struct Hash128 {
  std::array<uint8_t, 16> bytes{};

  std::string ToHex() const;  // 32 lowercase hex digits
  // Parses exactly 32 hex digits (either case); nullopt otherwise.
  static std::optional<Hash128> FromHex(std::string_view hex);
  static Hash128 FromXXH128(uint64_t high, uint64_t low);
  std::string_view AsBytes() const {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }
  static Hash128 FromBytes(std::string_view b);  // b.size() must be 16
  bool IsZero() const;

  friend bool operator==(const Hash128&, const Hash128&) = default;
  friend auto operator<=>(const Hash128&, const Hash128&) = default;
};

inline std::ostream& operator<<(std::ostream& os, const Hash128& h) { return os << h.ToHex(); }

struct ModelFingerprint : Hash128 {
  ModelFingerprint() = default;
  explicit ModelFingerprint(const Hash128& h) : Hash128(h) {}
};

struct BlockId : Hash128 {
  BlockId() = default;
  explicit BlockId(const Hash128& h) : Hash128(h) {}
};

// XXH3-128 of arbitrary bytes, as a Hash128.
Hash128 HashBytes(const void* data, size_t n);

// BlockId = XXH3-128 over the fingerprint's 16 bytes followed by the token ids as little-endian int32.
BlockId ComputeBlockId(const ModelFingerprint& model, std::span<const int32_t> tokens);

struct Hash128Hasher {
  size_t operator()(const Hash128& h) const {
    uint64_t v;
    __builtin_memcpy(&v, h.bytes.data() + 8, 8);
    return static_cast<size_t>(v);
  }
};

}  // namespace blockkv
