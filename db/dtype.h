// Element types of stored tensors, and exact conversions between them and float.
//
// Threads: pure functions, safe from any thread; buffers belong to the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <ostream>
#include <string_view>

namespace blockkv {

// Numeric values are part of the on-disk format (docs/format.md): never renumber.
enum class DType : uint8_t {
  kF32 = 1,
  kF16 = 2,
  kBF16 = 3,
};

inline size_t DTypeSize(DType t) { return t == DType::kF32 ? 4 : 2; }

// "F32", "F16", "BF16": the spelling safetensors uses.
const char* DTypeName(DType t);
// Accepts the safetensors spelling, case-insensitively, and "float32"/"float16"/"bfloat16".
std::optional<DType> ParseDType(std::string_view name);
bool IsValidDType(uint8_t v);
inline std::ostream& operator<<(std::ostream& os, DType t) { return os << DTypeName(t); }

// bf16 <-> float. FloatToBF16 rounds to nearest even; NaN stays NaN.
inline float BF16ToFloat(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint16_t FloatToBF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // NaN
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

// IEEE half <-> float, round to nearest even, subnormals and infinities handled.
float F16ToFloat(uint16_t h);
uint16_t FloatToF16(float f);

// Converts n elements of type `t` at src to float.
void ToFloat(DType t, const void* src, float* dst, size_t n);
// Converts n floats to type `t` at dst (rounding to nearest even).
void FromFloat(DType t, const float* src, void* dst, size_t n);

}  // namespace blockkv
