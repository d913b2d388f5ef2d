// The CPU forward pass over a chunk of new tokens that continues a KV cache.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "attention/kv_cache.h"
#include "attention/model.h"

namespace blockkv::cpu {

struct ForwardOutputs {
  // If set, receives each layer's pre-RoPE keys and values of the new tokens (EncodeBlock).
  BlockKV* pre_rope = nullptr;
  // If set, receives final logits: (vocab) of the last new token, or (n, vocab) when all_logits.
  std::vector<float>* logits = nullptr;
  bool all_logits = false;
};

// Runs `tokens` (n >= 1, ids in range: the caller checks) at positions cache->length ..
// cache->length+n-1. Each new token attends to every token already in the cache and causally to the
// new ones. Appends the new tokens' rotated keys and values to `cache` (which must be shaped for
// `model`). inv_freq: ComputeInvFreq(model.config().rope).
void Forward(const Model& model, const std::vector<float>& inv_freq,
             std::span<const int32_t> tokens, KVCache* cache, const ForwardOutputs& outputs,
             int threads);

}  // namespace blockkv::cpu
