// The small memory-bound ops of the forward pass: embedding gather, RMSNorm, SwiGLU, bias add, argmax and
// random fill. Each launcher checks its arguments, launches on `stream` and checks the launch.
// Tensors are row-major; "T" below is the runtime's storage precision (bf16 or fp16).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "attention/cuda/precision.h"
#include "db/status.h"

namespace blockkv::cuda {

// x[t] = float(table[ids[t]]).  table: (vocab, dim) T; ids: (n) device int32, in range; x: (n, dim) fp32.
Status LaunchEmbed(const void* table, const int32_t* ids, int64_t n, int dim, float* x, Precision precision,
                   cudaStream_t stream);

// out = T(w * x * rsqrt(mean(x^2) + eps)), all in fp32 (HF LlamaRMSNorm's float32 path).
// x: (n, dim) fp32 residual stream; w: (dim) fp32; out: (n, dim) T.
Status LaunchRmsNorm(const float* x, const float* w, int64_t n, int dim, float eps, void* out,
                     Precision precision, cudaStream_t stream);

// h = T(silu(gate) * up) with silu(g) = g / (1 + exp(-g)) in fp32.
// gate_up: (n, 2 * inter) T, gate in columns [0, inter), up in [inter, 2 * inter); h: (n, inter) T.
Status LaunchSwiGlu(const void* gate_up, int64_t n, int inter, void* h, Precision precision,
                    cudaStream_t stream);

// x[t] += b for every row t.  x: (n, dim) fp32; b: (dim) fp32.
Status LaunchAddBias(float* x, const float* b, int64_t n, int dim, cudaStream_t stream);

// out[0] = index of the largest of logits[0 .. vocab), the lowest among equals (torch.argmax).
// logits: (vocab) fp32 device; out: device int32.
Status LaunchArgMax(const float* logits, int vocab, int32_t* out, cudaStream_t stream);

// x[i] = T(mean + stddev * N(0, 1)) from a counter-based generator keyed by (seed, i): the same values for
// the same seed on every GPU. x: (n) T.
Status LaunchFillNormal(void* x, int64_t n, uint64_t seed, float mean, float stddev, Precision precision,
                        cudaStream_t stream);
// The same for an fp32 buffer.
Status LaunchFillNormalF32(float* x, int64_t n, uint64_t seed, float mean, float stddev, cudaStream_t stream);

// dst[i] = float(src[i]) and dst[i] = T(src[i]) (round to nearest even), n elements.
Status LaunchToFloat(const void* src, int64_t n, float* dst, Precision precision, cudaStream_t stream);
Status LaunchFromFloat(const float* src, int64_t n, void* dst, Precision precision, cudaStream_t stream);

}  // namespace blockkv::cuda
