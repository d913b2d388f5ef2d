#include "attention/cuda/elementwise.cuh"

#include <cfloat>

#include "attention/cuda/cuda_status.h"
#include "attention/cuda/device_common.cuh"

namespace blockkv::cuda {
namespace {

unsigned Blocks(int64_t n, int threads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 65535 * 64 ? b : 65535 * 64);
}

template <typename T>
__global__ void EmbedKernel(const T* __restrict__ table, const int32_t* __restrict__ ids, int dim,
                            float* __restrict__ x) {
  const int64_t t = blockIdx.x;
  const T* row = table + static_cast<int64_t>(ids[t]) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) x[t * dim + i] = dev::ToFloat(row[i]);
}

// One CTA per row.
template <typename T>
__global__ void RmsNormKernel(const float* __restrict__ x, const float* __restrict__ w, int dim, float eps,
                              T* __restrict__ out) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const float* xr = x + r * dim;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
  ss = dev::BlockSum(ss, scratch);
  const float inv = rsqrtf(ss / static_cast<float>(dim) + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) out[r * dim + i] = dev::FromFloat<T>(w[i] * (xr[i] * inv));
}

// One CTA per row, 16-byte accesses (dim % 4 == 0): x as float4, the output as 4 T (8 bytes).
template <typename T>
__global__ void RmsNormVecKernel(const float* __restrict__ x, const float* __restrict__ w, int dim, float eps,
                                 T* __restrict__ out) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const float4* xr = reinterpret_cast<const float4*>(x + r * dim);
  const float4* wv = reinterpret_cast<const float4*>(w);
  const int n4 = dim / 4;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < n4; i += blockDim.x) {
    const float4 v = xr[i];
    ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
  }
  ss = dev::BlockSum(ss, scratch);
  const float inv = rsqrtf(ss / static_cast<float>(dim) + eps);
  uint2* o = reinterpret_cast<uint2*>(out + r * dim);
  for (int i = threadIdx.x; i < n4; i += blockDim.x) {
    const float4 v = xr[i], g = wv[i];
    uint2 packed;
    packed.x = dev::Pack2<T>(g.x * (v.x * inv), g.y * (v.y * inv));
    packed.y = dev::Pack2<T>(g.z * (v.z * inv), g.w * (v.w * inv));
    o[i] = packed;
  }
}

// 8 elements per thread and iteration (inter % 8 == 0): 16-byte loads of gate and up, one 16-byte store.
// The same arithmetic per element as SwiGluKernel.
template <typename T>
__global__ void SwiGluVecKernel(const T* __restrict__ gu, int64_t n, int inter, T* __restrict__ h) {
  const int64_t total8 = n * inter / 8;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total8;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t e = i * 8, t = e / inter, j = e % inter;
    const uint4 graw = *reinterpret_cast<const uint4*>(gu + t * 2 * inter + j);
    const uint4 uraw = *reinterpret_cast<const uint4*>(gu + t * 2 * inter + inter + j);
    const T* g8 = reinterpret_cast<const T*>(&graw);
    const T* u8 = reinterpret_cast<const T*>(&uraw);
    uint4 out;
    T* o8 = reinterpret_cast<T*>(&out);
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const float g = dev::ToFloat(g8[k]), u = dev::ToFloat(u8[k]);
      o8[k] = dev::FromFloat<T>(g / (1.0f + expf(-g)) * u);
    }
    *reinterpret_cast<uint4*>(h + e) = out;
  }
}

template <typename T>
__global__ void SwiGluKernel(const T* __restrict__ gu, int64_t n, int inter, T* __restrict__ h) {
  const int64_t total = n * inter;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / inter, j = i % inter;
    const float g = dev::ToFloat(gu[t * 2 * inter + j]);
    const float u = dev::ToFloat(gu[t * 2 * inter + inter + j]);
    h[i] = dev::FromFloat<T>(g / (1.0f + expf(-g)) * u);
  }
}

__global__ void AddBiasKernel(float* __restrict__ x, const float* __restrict__ b, int64_t total, int dim) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    x[i] += b[i % dim];
  }
}

// One CTA of 1024 threads; (value, index) pairs reduced so that ties keep the lower index.
__global__ void ArgMaxKernel(const float* __restrict__ logits, int vocab, int32_t* __restrict__ out) {
  __shared__ float s_val[32];
  __shared__ int s_idx[32];
  float best = -INFINITY;
  int idx = INT_MAX;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = logits[i];
    if (idx == INT_MAX || v > best) {  // threads scan increasing indices: ties keep the first
      best = v;
      idx = i;
    }
  }
  auto better = [](float v1, int i1, float v2, int i2) { return v2 > v1 || (v2 == v1 && i2 < i1); };
  for (int o = 16; o > 0; o >>= 1) {
    const float v2 = __shfl_xor_sync(0xffffffffu, best, o);
    const int i2 = __shfl_xor_sync(0xffffffffu, idx, o);
    if (better(best, idx, v2, i2)) {
      best = v2;
      idx = i2;
    }
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    s_val[warp] = best;
    s_idx[warp] = idx;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) {
      if (better(best, idx, s_val[w], s_idx[w])) {
        best = s_val[w];
        idx = s_idx[w];
      }
    }
    *out = idx == INT_MAX ? 0 : idx;
  }
}

__device__ __forceinline__ uint64_t SplitMix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__device__ __forceinline__ float NormalAt(uint64_t seed, int64_t i) {
  const uint64_t a = SplitMix(seed ^ (static_cast<uint64_t>(i) * 0x632be59bd9b4e019ull));
  const uint64_t b = SplitMix(a);
  const float u1 = (static_cast<float>(a >> 40) + 0.5f) * (1.0f / 16777216.0f);
  const float u2 = static_cast<float>(b >> 40) * (1.0f / 16777216.0f);
  return sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
}

template <typename T>
__global__ void FillNormalKernel(T* __restrict__ x, int64_t n, uint64_t seed, float mean, float stddev) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    x[i] = dev::FromFloat<T>(mean + stddev * NormalAt(seed, i));
  }
}

__global__ void FillNormalF32Kernel(float* __restrict__ x, int64_t n, uint64_t seed, float mean, float stddev) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    x[i] = mean + stddev * NormalAt(seed, i);
  }
}

template <typename T>
__global__ void ToFloatKernel(const T* __restrict__ src, int64_t n, float* __restrict__ dst) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = dev::ToFloat(src[i]);
  }
}

template <typename T>
__global__ void FromFloatKernel(const float* __restrict__ src, int64_t n, T* __restrict__ dst) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = dev::FromFloat<T>(src[i]);
  }
}

Status Check(const char* what) { return CudaStatus(cudaGetLastError(), what); }

}  // namespace

Status LaunchEmbed(const void* table, const int32_t* ids, int64_t n, int dim, float* x, Precision precision,
                   cudaStream_t stream) {
  if (n <= 0 || dim <= 0 || table == nullptr || ids == nullptr || x == nullptr) {
    return Status::InvalidArgument("embed: bad arguments");
  }
  const int threads = dim >= 1024 ? 1024 : 256;
  if (precision == Precision::kBF16) {
    EmbedKernel<<<static_cast<unsigned>(n), threads, 0, stream>>>(static_cast<const __nv_bfloat16*>(table), ids, dim, x);
  } else {
    EmbedKernel<<<static_cast<unsigned>(n), threads, 0, stream>>>(static_cast<const __half*>(table), ids, dim, x);
  }
  return Check("EmbedKernel");
}

Status LaunchRmsNorm(const float* x, const float* w, int64_t n, int dim, float eps, void* out,
                     Precision precision, cudaStream_t stream) {
  if (n <= 0 || dim <= 0 || x == nullptr || w == nullptr || out == nullptr) {
    return Status::InvalidArgument("rmsnorm: bad arguments");
  }
  const bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(out) % 8 == 0;
  if (dim % 4 == 0 && aligned) {
    const int threads = dim >= 4096 ? 512 : dim >= 1024 ? 256 : 128;
    if (precision == Precision::kBF16) {
      RmsNormVecKernel<<<static_cast<unsigned>(n), threads, 0, stream>>>(x, w, dim, eps, static_cast<__nv_bfloat16*>(out));
    } else {
      RmsNormVecKernel<<<static_cast<unsigned>(n), threads, 0, stream>>>(x, w, dim, eps, static_cast<__half*>(out));
    }
    return Check("RmsNormVecKernel");
  }
  const int threads = dim >= 2048 ? 1024 : 256;
  if (precision == Precision::kBF16) {
    RmsNormKernel<<<static_cast<unsigned>(n), threads, 0, stream>>>(x, w, dim, eps, static_cast<__nv_bfloat16*>(out));
  } else {
    RmsNormKernel<<<static_cast<unsigned>(n), threads, 0, stream>>>(x, w, dim, eps, static_cast<__half*>(out));
  }
  return Check("RmsNormKernel");
}

Status LaunchSwiGlu(const void* gate_up, int64_t n, int inter, void* h, Precision precision, cudaStream_t stream) {
  if (n <= 0 || inter <= 0 || gate_up == nullptr || h == nullptr) return Status::InvalidArgument("swiglu: bad arguments");
  if (inter % 8 == 0 && reinterpret_cast<uintptr_t>(gate_up) % 16 == 0 && reinterpret_cast<uintptr_t>(h) % 16 == 0) {
    const unsigned blocks = Blocks(n * inter / 8, 256);
    if (precision == Precision::kBF16) {
      SwiGluVecKernel<<<blocks, 256, 0, stream>>>(static_cast<const __nv_bfloat16*>(gate_up), n, inter,
                                                  static_cast<__nv_bfloat16*>(h));
    } else {
      SwiGluVecKernel<<<blocks, 256, 0, stream>>>(static_cast<const __half*>(gate_up), n, inter, static_cast<__half*>(h));
    }
    return Check("SwiGluVecKernel");
  }
  const unsigned blocks = Blocks(n * inter, 256);
  if (precision == Precision::kBF16) {
    SwiGluKernel<<<blocks, 256, 0, stream>>>(static_cast<const __nv_bfloat16*>(gate_up), n, inter,
                                             static_cast<__nv_bfloat16*>(h));
  } else {
    SwiGluKernel<<<blocks, 256, 0, stream>>>(static_cast<const __half*>(gate_up), n, inter, static_cast<__half*>(h));
  }
  return Check("SwiGluKernel");
}

Status LaunchAddBias(float* x, const float* b, int64_t n, int dim, cudaStream_t stream) {
  if (n <= 0 || dim <= 0 || x == nullptr || b == nullptr) return Status::InvalidArgument("add_bias: bad arguments");
  AddBiasKernel<<<Blocks(n * dim, 256), 256, 0, stream>>>(x, b, n * dim, dim);
  return Check("AddBiasKernel");
}

Status LaunchArgMax(const float* logits, int vocab, int32_t* out, cudaStream_t stream) {
  if (vocab <= 0 || logits == nullptr || out == nullptr) return Status::InvalidArgument("argmax: bad arguments");
  ArgMaxKernel<<<1, 1024, 0, stream>>>(logits, vocab, out);
  return Check("ArgMaxKernel");
}

Status LaunchFillNormal(void* x, int64_t n, uint64_t seed, float mean, float stddev, Precision precision,
                        cudaStream_t stream) {
  if (n <= 0 || x == nullptr) return Status::InvalidArgument("fill_normal: bad arguments");
  if (precision == Precision::kBF16) {
    FillNormalKernel<<<Blocks(n, 256), 256, 0, stream>>>(static_cast<__nv_bfloat16*>(x), n, seed, mean, stddev);
  } else {
    FillNormalKernel<<<Blocks(n, 256), 256, 0, stream>>>(static_cast<__half*>(x), n, seed, mean, stddev);
  }
  return Check("FillNormalKernel");
}

Status LaunchFillNormalF32(float* x, int64_t n, uint64_t seed, float mean, float stddev, cudaStream_t stream) {
  if (n <= 0 || x == nullptr) return Status::InvalidArgument("fill_normal: bad arguments");
  FillNormalF32Kernel<<<Blocks(n, 256), 256, 0, stream>>>(x, n, seed, mean, stddev);
  return Check("FillNormalF32Kernel");
}

Status LaunchToFloat(const void* src, int64_t n, float* dst, Precision precision, cudaStream_t stream) {
  if (n <= 0) return Status::OK();
  if (precision == Precision::kBF16) {
    ToFloatKernel<<<Blocks(n, 256), 256, 0, stream>>>(static_cast<const __nv_bfloat16*>(src), n, dst);
  } else {
    ToFloatKernel<<<Blocks(n, 256), 256, 0, stream>>>(static_cast<const __half*>(src), n, dst);
  }
  return Check("ToFloatKernel");
}

Status LaunchFromFloat(const float* src, int64_t n, void* dst, Precision precision, cudaStream_t stream) {
  if (n <= 0) return Status::OK();
  if (precision == Precision::kBF16) {
    FromFloatKernel<<<Blocks(n, 256), 256, 0, stream>>>(src, n, static_cast<__nv_bfloat16*>(dst));
  } else {
    FromFloatKernel<<<Blocks(n, 256), 256, 0, stream>>>(src, n, static_cast<__half*>(dst));
  }
  return Check("FromFloatKernel");
}

}  // namespace blockkv::cuda
