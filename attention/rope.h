// Rotary position embeddings, bit-for-bit in the arithmetic order HF transformers uses.
//
// inv_freq is computed in float32 as transformers does (`1 / base ** (arange(0, dim, 2).float() /
// dim)`, then the linear or llama3 adjustment), the angle of position p is float32(p) * inv_freq[i]
// rounded to float32, and cos/sin are taken of that float32 angle. Rotation follows rotate_half:
// dimension i pairs with i + rotary_dim/2 (not interleaved pairs).
//
// Keys are stored pre-RoPE (DESIGN §2) and rotated once at their real positions `offset + i` by
// ApplyRope.
//
// Threads: pure functions on caller-owned buffers, safe from any thread.
#pragma once

#include <cstdint>
#include <vector>

#include "attention/model_config.h"

namespace blockkv {

// rotary_dim / 2 inverse frequencies for `rope` (rope.rotary_dim must be positive and even).
std::vector<float> ComputeInvFreq(const RopeConfig& rope);

// cos and sin tables for `count` consecutive positions starting at `first_position`:
// cos[(p - first) * half + i], half = rotary_dim / 2.
struct RopeTable {
  int64_t first_position = 0;
  int64_t count = 0;
  int half = 0;
  std::vector<float> cos, sin;
};
RopeTable BuildRopeTable(const std::vector<float>& inv_freq, int64_t first_position, int64_t count);

// Rotates x in place. x: (tokens, heads, head_dim), token t at position table.first_position + t;
// requires tokens <= table.count and head_dim >= 2 * table.half. Dimensions past 2 * half are left
// unchanged.
void ApplyRope(const RopeTable& table, float* x, int64_t tokens, int heads, int head_dim);

}  // namespace blockkv
