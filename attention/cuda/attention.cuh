// Grouped-query attention over a token-major KV cache, flash-attention style (tiles of keys streamed through
// shared memory, online softmax in fp32, mma.sync tensor-core products), for every shape the runtime needs:
//   (a) batched variable-length block encoding: many sequences, each causal over its own keys;
//   (b) final-block prefill: n queries over `past` earlier keys plus their own, causally;
//   (c) decoding: one query over a long cache.
// Long key ranges are split across CTAs (split-KV, "flash-decoding") and merged by a second kernel.
// The query rows of one CTA are (token, head-in-group) pairs of one KV head, so the group's heads share
// each key/value tile (GQA).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "attention/cuda/precision.h"
#include "db/status.h"

namespace blockkv::cuda {

// One independent sequence of a batched attention call. Lives in device memory so that a captured CUDA
// graph can advance `past` between replays (decoding).
struct AttnSeq {
  int32_t q_begin;   // its first query token: row index into q and out
  int32_t n;         // its query tokens
  int32_t past;      // keys before its first query; query i is key index past + i and sees keys 0 .. past + i
  int32_t kv_begin;  // token index of its key 0 in k and v
};

struct AttnParams {
  const void* q;         // (q_tokens, heads, head_dim), rotated
  const void* k;         // (kv_tokens, kv_heads, head_dim), rotated
  const void* v;         // (kv_tokens, kv_heads, head_dim)
  void* out;             // (q_tokens, heads, head_dim)
  const AttnSeq* seqs;   // device, (num_seqs)
  int num_seqs = 0;
  int q_tokens = 0;      // rows of q/out (strides of the split-KV partials)
  int heads = 0;         // query heads; a multiple of kv_heads
  int kv_heads = 0;
  int head_dim = 0;      // 64 or 128
  float scale = 0.0f;    // softmax scale, head_dim ** -0.5
  int max_rows = 0;      // max over seqs of n * heads / kv_heads: sizes the grid
  int max_keys = 0;      // max over seqs of past + n (an upper bound is fine): sizes the split
  // Split-KV: 0 chooses from the shape (AttentionSplits); 1 disables it.
  int num_splits = 0;
  // Split-KV workspace of AttentionPartialFloats floats: the per-split outputs (num_splits, q_tokens,
  // heads, head_dim) followed by their log-sum-exps (num_splits, q_tokens, heads). Unused without a split.
  float* workspace = nullptr;
};

// Which kernel runs the attention (process-wide; the environment variable BLOCKKV_ATTN_KERNEL=mma|wgmma
// sets it before the first call). kAuto: on an sm_90 device whose sm_90a code is loaded, the wgmma kernel
// for every call with more than 16 rows (query token x head-in-group pairs) per KV head, the mma.sync
// kernel for decoding; elsewhere the mma.sync kernel. kWgmma forces it (NotSupported where unusable),
// kMmaSync forbids it; tests and benchmarks use this to compare the two.
enum class AttnKernel { kAuto = 0, kMmaSync = 1, kWgmma = 2 };
void SetAttentionKernel(AttnKernel kernel);
AttnKernel GetAttentionKernel();
// Whether the wgmma kernel can run here (an sm_90 device and this build's sm_90a code).
bool WgmmaAttentionUsable();

// The split count the launcher would use for these shapes on `sm_count` multiprocessors (1: no split).
int AttentionSplits(int max_rows, int max_keys, int kv_heads, int num_seqs, int sm_count);

// Workspace floats needed for `splits`.
inline size_t AttentionPartialFloats(int splits, int q_tokens, int heads, int head_dim) {
  return splits <= 1 ? 0 : static_cast<size_t>(splits) * q_tokens * heads * (head_dim + 1);
}

// Launches the attention kernel (and the split-KV merge). p.num_splits is resolved by AttentionSplits
// when 0; p.workspace must then hold AttentionPartialFloats. InvalidArgument on bad shapes.
Status LaunchAttention(AttnParams p, Precision precision, int sm_count, cudaStream_t stream);

// One decode step's bookkeeping on the device, so that a captured step can be replayed: *token = *next,
// *pos += 1, seq->past += 1. All pointers device.
Status LaunchAdvanceDecode(int32_t* token, const int32_t* next, int32_t* pos, AttnSeq* seq, cudaStream_t stream);

}  // namespace blockkv::cuda
