// Key/value tensors exchanged between the runtime, the store and the engine.
//
// Layout everywhere: per layer, token-major (tokens, kv_heads, head_dim) float32 — the store's
// layout (DESIGN §4), so one block's layer is one contiguous slab of a token-major cache.
//
// Ownership and threads: plain values owned by whoever holds them; not synchronized.
#pragma once

#include <cstdint>
#include <vector>

namespace blockkv {

// One encoded block: per-layer keys before RoPE and values, computed with block-local causal
// attention at positions 0 .. tokens-1. Pre-RoPE keys and values do not depend on where the block
// later sits in a prompt (DESIGN §2), so a BlockKV can be stored once and reused at any offset.
struct BlockKV {
  uint32_t tokens = 0;
  std::vector<std::vector<float>> k;  // [layer] -> (tokens, kv_heads, head_dim), pre-RoPE
  std::vector<std::vector<float>> v;  // [layer] -> (tokens, kv_heads, head_dim)
};

// A decode-ready cache: keys after RoPE at their positions 0 .. length-1, and values.
struct KVCache {
  int num_layers = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int64_t length = 0;                 // tokens held; the next token sits at position `length`
  std::vector<std::vector<float>> k;  // [layer] -> (length, kv_heads, head_dim), post-RoPE
  std::vector<std::vector<float>> v;  // [layer] -> (length, kv_heads, head_dim)
};

}  // namespace blockkv
