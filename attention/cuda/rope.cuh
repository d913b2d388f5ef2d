// Rotary position embeddings on the GPU, in HF transformers' arithmetic (attention/rope.h): the angle of
// position p is float32(p) * inv_freq[i] in fp32, rotation by rotate_half (dimension i pairs with
// i + rotary_dim / 2), dimensions at and past rotary_dim pass through. Rotation runs in fp32 on the
// stored (bf16/fp16) inputs and rounds once.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "attention/cuda/precision.h"
#include "db/status.h"

namespace blockkv::cuda {

// Splits the fused q/k/v projection of n new tokens, adds the bias, rotates q and k at their positions and
// writes k and v into the cache (and, for EncodeBlock, the pre-RoPE k and v).
struct QkvRopeParams {
  const void* qkv = nullptr;       // (n, q_dim + 2 * kv_dim) T: the q, k and v projections side by side
  const float* bias = nullptr;     // (q_dim + 2 * kv_dim) fp32, or null
  const int32_t* pos = nullptr;    // (n) device: each token's position
  const float* inv_freq = nullptr; // (rotary_dim / 2) fp32 device
  int64_t n = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;
  int rotary_dim = 0;              // even, <= head_dim
  void* q = nullptr;               // out (n, heads, head_dim) T, rotated
  // out (rows, kv_heads, head_dim) T: token t's rotated key and its value go to row pos[t] when
  // rows_at_pos (a cache indexed by position), else to row t (a scratch buffer of the n tokens).
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  bool rows_at_pos = true;
  void* k_raw = nullptr;           // optional out (n, kv_heads, head_dim) T: keys before RoPE
  void* v_raw = nullptr;           // optional out (n, kv_heads, head_dim) T
};
Status LaunchQkvRope(const QkvRopeParams& p, Precision precision, cudaStream_t stream);

// Rotates a loaded block's pre-RoPE keys to positions first_position .. first_position + tokens - 1.
// src: (tokens, kv_heads, head_dim) T; dst: (tokens, kv_heads, head_dim) T (the cache rows of the block;
// may not alias src). inv_freq: (rotary_dim / 2) fp32 device.
Status LaunchRopeKeys(const void* src, void* dst, int64_t tokens, int kv_heads, int head_dim, int rotary_dim,
                      const float* inv_freq, int64_t first_position, Precision precision, cudaStream_t stream);

// One block's keys and values to re-encode into a cache: rotate `tokens` pre-RoPE keys to positions
// first_position .. and copy the values (none if v_src is null: they are in place already). Device pointers,
// (tokens, kv_heads, head_dim) T each.
struct RopeAppendJob {
  const void* k_src;
  const void* v_src;
  void* k_dst;
  void* v_dst;
  int32_t tokens;
  int32_t first_position;
};
// Runs `num_jobs` jobs (device array; e.g. every block of a prompt, every layer) in one launch.
// max_tokens: the largest jobs[i].tokens.
Status LaunchRopeAppend(const RopeAppendJob* jobs, int num_jobs, int max_tokens, int kv_heads, int head_dim,
                        int rotary_dim, const float* inv_freq, Precision precision, cudaStream_t stream);

}  // namespace blockkv::cuda
