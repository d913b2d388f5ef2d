// Single-op entry points for tests (tests/cuda_ops_test.cc): each copies fp32 host inputs to the device
// (rounding the tensors the forward pass stores in T to `precision`), runs one op with its launcher and
// returns the outputs as fp32. No CUDA types, so the tests compile with the host compiler.
#pragma once

#include <cstdint>
#include <vector>

#include "attention/cuda/precision.h"
#include "db/status.h"

namespace blockkv::cuda::opcheck {

// out (n, dim) = table[ids]; table (vocab, dim) stored in T.
StatusOr<std::vector<float>> Embed(const std::vector<float>& table, int dim, const std::vector<int32_t>& ids,
                                   Precision precision);

// out (n, dim) = T(w * x * rsqrt(mean(x^2) + eps)); x fp32, w fp32.
StatusOr<std::vector<float>> RmsNorm(const std::vector<float>& x, const std::vector<float>& w, int64_t n, int dim,
                                     float eps, Precision precision);

// h (n, inter) = silu(gate) * up; gate_up (n, 2 inter) stored in T.
StatusOr<std::vector<float>> SwiGlu(const std::vector<float>& gate_up, int64_t n, int inter, Precision precision);

// y (n, out) = x W^T (+ y0 when accumulate, fp32 output then); x, w stored in T.
StatusOr<std::vector<float>> Linear(const std::vector<float>& x, const std::vector<float>& w, int64_t n, int in,
                                    int out, Precision precision, bool f32_out, const std::vector<float>* y0 = nullptr);

struct QkvRopeOut {
  std::vector<float> q, k, v, k_raw, v_raw;  // (n, heads|kv_heads, head_dim)
};
// The fused q/k/v split + bias + RoPE at `positions`; qkv (n, q_dim + 2 kv_dim) stored in T; bias fp32 or
// empty; inv_freq (rotary_dim / 2).
StatusOr<QkvRopeOut> QkvRope(const std::vector<float>& qkv, const std::vector<float>& bias,
                             const std::vector<int32_t>& positions, const std::vector<float>& inv_freq, int heads,
                             int kv_heads, int head_dim, int rotary_dim, Precision precision);

// Rotated keys (tokens, kv_heads, head_dim) of pre-RoPE src stored in T, at first_position + t.
StatusOr<std::vector<float>> RopeKeys(const std::vector<float>& src, int64_t tokens, int kv_heads, int head_dim,
                                      int rotary_dim, const std::vector<float>& inv_freq, int64_t first_position,
                                      Precision precision);

struct SeqSpec {
  int q_begin, n, past, kv_begin;  // as AttnSeq (attention/cuda/attention.cuh)
};
// out (q_tokens, heads, head_dim); q (q_tokens, heads, head_dim), k and v (kv_tokens, kv_heads, head_dim)
// stored in T. num_splits: 0 lets the launcher choose, >= 1 forces it. kernel: which attention kernel runs
// the call (AttnKernel in attention/cuda/attention.cuh).
enum class Kernel { kAuto = 0, kMmaSync = 1, kWgmma = 2 };
StatusOr<std::vector<float>> Attention(const std::vector<float>& q, const std::vector<float>& k,
                                       const std::vector<float>& v, const std::vector<SeqSpec>& seqs, int q_tokens,
                                       int kv_tokens, int heads, int kv_heads, int head_dim, int num_splits,
                                       Precision precision, Kernel kernel = Kernel::kAuto);
// Whether the wgmma attention kernel can run on this device.
bool WgmmaUsable();

// Index of the largest logit (lowest among equals).
StatusOr<int32_t> ArgMax(const std::vector<float>& logits);

// `draws` tokens drawn one after another by LaunchSample (sampling.cuh) from the same logits, its generator
// seeded as Sampler's with `seed`.
StatusOr<std::vector<int32_t>> Sample(const std::vector<float>& logits, float temperature, int top_k, float top_p,
                                      uint64_t seed, int draws);

// Values as the device stores them in T: round to nearest even and back (host-side, for references).
std::vector<float> RoundTo(const std::vector<float>& x, Precision precision);

}  // namespace blockkv::cuda::opcheck
