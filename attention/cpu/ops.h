// The CPU backend's operations, float32 throughout. Each is a plain function over row-major
// buffers; the forward pass (attention/cpu/forward.h) calls them layer by layer.
#pragma once

#include <cstdint>

namespace blockkv::cpu {

// out[t] = table[ids[t]] for t < n; table: (vocab, dim), out: (n, dim). ids must be in range.
void Embed(const float* table, const int32_t* ids, int64_t n, int dim, float* out);

// HF LlamaRMSNorm in float32: out = w * (x * rsqrt(mean(x^2) + eps)). x, out: (n, dim); may alias.
void RmsNorm(const float* x, const float* w, int64_t n, int dim, float eps, float* out,
             int threads);

// y = x W^T (+ b): x (n, in), w (out, in) as nn.Linear stores it, b (out) or null, y (n, out).
// cblas_sgemm.
void Linear(const float* x, const float* w, const float* b, int64_t n, int in, int out, float* y);

// y += x W^T: the residual add fused into the GEMM (beta = 1).
void LinearAccumulate(const float* x, const float* w, int64_t n, int in, int out, float* y);

// gate = silu(gate) * up, elementwise over n values; silu(x) = x / (1 + exp(-x)).
void SwiGlu(float* gate, const float* up, int64_t n, int threads);

// Grouped-query attention of n new queries over `past + n` keys: query i (at sequence index past +
// i) attends to keys 0 .. past + i (everything before it, and itself); scores are (q·k) * scale,
// softmax in float32, then the probabilities weight v.
//   q:   (n, heads, head_dim), already rotated
//   k,v: (past + n, kv_heads, head_dim), keys already rotated
//   out: (n, heads, head_dim)
// Query head h reads kv head h / (heads / kv_heads).
void CausalAttention(const float* q, const float* k, const float* v, int64_t n, int64_t past,
                     int heads, int kv_heads, int head_dim, float scale, float* out, int threads);

}  // namespace blockkv::cpu
