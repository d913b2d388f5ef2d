// xoshiro256** (Blackman and Vigna), the generator behind Sampler (attention/sampling.h), in one place for
// the host and the CUDA sampler (attention/cuda/sampling.cu), so that both draw the same sequence.
//
// Threads: pure functions on a caller-owned state.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define BLOCKKV_HOST_DEVICE __host__ __device__
#else
#define BLOCKKV_HOST_DEVICE
#endif

namespace blockkv {

BLOCKKV_HOST_DEVICE inline uint64_t XoshiroRotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// Advances the state s[0..3] by one step; returns a uniform double in [0, 1) from the output's top 53 bits.
BLOCKKV_HOST_DEVICE inline double XoshiroUniform(uint64_t* s) {
  const uint64_t result = XoshiroRotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = XoshiroRotl(s[3], 45);
  return static_cast<double>(result >> 11) * 0x1.0p-53;
}

}  // namespace blockkv
