#include "attention/cuda/rope.cuh"

#include "attention/cuda/cuda_status.h"
#include "attention/cuda/device_common.cuh"

namespace blockkv::cuda {
namespace {

constexpr int kMaxHalf = 128;  // rotary_dim / 2 at most (head_dim <= 256)

// Fills cos/sin of this CTA's position into shared memory.
__device__ __forceinline__ void Angles(const float* inv_freq, int half, float pos, float* c, float* s) {
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    const float angle = inv_freq[i] * pos;
    sincosf(angle, &s[i], &c[i]);
  }
  __syncthreads();
}

// Element d of a rotated head vector x (fp32 arithmetic).
template <typename T>
__device__ __forceinline__ float Rotated(const T* x, const float* bias, int d, int half, const float* c,
                                         const float* s) {
  auto at = [&](int j) { return dev::ToFloat(x[j]) + (bias != nullptr ? bias[j] : 0.0f); };
  if (d < half) return at(d) * c[d] + (-at(d + half)) * s[d];
  if (d < 2 * half) return at(d) * c[d - half] + at(d - half) * s[d - half];
  return at(d);
}

// One CTA per token.
template <typename T>
__global__ void QkvRopeKernel(const QkvRopeParams p) {
  __shared__ float c[kMaxHalf], s[kMaxHalf];
  const int64_t t = blockIdx.x;
  const int half = p.rotary_dim / 2, D = p.head_dim;
  const int qd = p.heads * D, kvd = p.kv_heads * D, width = qd + 2 * kvd;
  const int pos = p.pos[t];
  Angles(p.inv_freq, half, static_cast<float>(pos), c, s);
  const T* row = static_cast<const T*>(p.qkv) + t * width;
  const int64_t cache_row = p.rows_at_pos ? pos : t;
  T* q = static_cast<T*>(p.q) + t * qd;
  for (int i = threadIdx.x; i < qd; i += blockDim.x) {
    const int h = i / D, d = i % D;
    q[i] = dev::FromFloat<T>(Rotated(row + h * D, p.bias ? p.bias + h * D : nullptr, d, half, c, s));
  }
  T* kc = static_cast<T*>(p.k_cache) + cache_row * kvd;
  T* vc = static_cast<T*>(p.v_cache) + cache_row * kvd;
  for (int i = threadIdx.x; i < kvd; i += blockDim.x) {
    const int h = i / D, d = i % D;
    const T* kin = row + qd + h * D;
    const float* kb = p.bias ? p.bias + qd + h * D : nullptr;
    kc[i] = dev::FromFloat<T>(Rotated(kin, kb, d, half, c, s));
    const float kraw = dev::ToFloat(kin[d]) + (kb ? kb[d] : 0.0f);
    const float v = dev::ToFloat(row[qd + kvd + i]) + (p.bias ? p.bias[qd + kvd + i] : 0.0f);
    vc[i] = dev::FromFloat<T>(v);
    if (p.k_raw != nullptr) static_cast<T*>(p.k_raw)[t * kvd + i] = dev::FromFloat<T>(kraw);
    if (p.v_raw != nullptr) static_cast<T*>(p.v_raw)[t * kvd + i] = dev::FromFloat<T>(v);
  }
}

template <typename T>
__global__ void RopeKeysKernel(const T* __restrict__ src, T* __restrict__ dst, int kv_heads, int head_dim,
                               int rotary_dim, const float* __restrict__ inv_freq, int64_t first_position) {
  __shared__ float c[kMaxHalf], s[kMaxHalf];
  const int64_t t = blockIdx.x;
  const int half = rotary_dim / 2, kvd = kv_heads * head_dim;
  Angles(inv_freq, half, static_cast<float>(first_position + t), c, s);
  for (int i = threadIdx.x; i < kvd; i += blockDim.x) {
    const int h = i / head_dim, d = i % head_dim;
    dst[t * kvd + i] = dev::FromFloat<T>(Rotated(src + t * kvd + h * head_dim, nullptr, d, half, c, s));
  }
}

constexpr int kAppendTokens = 8;  // tokens per CTA of RopeAppendKernel

// grid: (jobs, ceil(max_tokens / kAppendTokens)); each CTA rotates and copies up to kAppendTokens tokens.
template <typename T>
__global__ void RopeAppendKernel(const RopeAppendJob* __restrict__ jobs, int kv_heads, int head_dim, int rotary_dim,
                                 const float* __restrict__ inv_freq) {
  __shared__ float c[kMaxHalf], s[kMaxHalf];
  const RopeAppendJob job = jobs[blockIdx.x];
  const int half = rotary_dim / 2, kvd = kv_heads * head_dim;
  const int t0 = blockIdx.y * kAppendTokens;
  const int t1 = min(job.tokens, t0 + kAppendTokens);
  for (int t = t0; t < t1; ++t) {
    __syncthreads();  // the previous token's angles are no longer read
    Angles(inv_freq, half, static_cast<float>(job.first_position + t), c, s);
    const T* ks = static_cast<const T*>(job.k_src) + static_cast<int64_t>(t) * kvd;
    T* kd = static_cast<T*>(job.k_dst) + static_cast<int64_t>(t) * kvd;
    const T* vs = static_cast<const T*>(job.v_src) + static_cast<int64_t>(t) * kvd;
    T* vd = static_cast<T*>(job.v_dst) + static_cast<int64_t>(t) * kvd;
    for (int i = threadIdx.x; i < kvd; i += blockDim.x) {
      const int h = i / head_dim, d = i % head_dim;
      kd[i] = dev::FromFloat<T>(Rotated(ks + h * head_dim, nullptr, d, half, c, s));
      vd[i] = vs[i];
    }
  }
}

}  // namespace

Status LaunchRopeAppend(const RopeAppendJob* jobs, int num_jobs, int max_tokens, int kv_heads, int head_dim,
                        int rotary_dim, const float* inv_freq, Precision precision, cudaStream_t stream) {
  if (num_jobs == 0 || max_tokens == 0) return Status::OK();
  if (num_jobs < 0 || max_tokens < 0 || jobs == nullptr || kv_heads <= 0 || head_dim <= 0 || rotary_dim <= 0 ||
      rotary_dim % 2 != 0 || rotary_dim > head_dim || rotary_dim / 2 > kMaxHalf || inv_freq == nullptr) {
    return Status::InvalidArgument("rope_append: bad arguments");
  }
  const dim3 grid(num_jobs, (max_tokens + kAppendTokens - 1) / kAppendTokens);
  if (precision == Precision::kBF16) {
    RopeAppendKernel<__nv_bfloat16><<<grid, 256, 0, stream>>>(jobs, kv_heads, head_dim, rotary_dim, inv_freq);
  } else {
    RopeAppendKernel<__half><<<grid, 256, 0, stream>>>(jobs, kv_heads, head_dim, rotary_dim, inv_freq);
  }
  return CudaStatus(cudaGetLastError(), "RopeAppendKernel");
}

Status LaunchQkvRope(const QkvRopeParams& p, Precision precision, cudaStream_t stream) {
  if (p.n <= 0 || p.heads <= 0 || p.kv_heads <= 0 || p.head_dim <= 0 || p.rotary_dim <= 0 ||
      p.rotary_dim % 2 != 0 || p.rotary_dim > p.head_dim || p.rotary_dim / 2 > kMaxHalf || p.qkv == nullptr ||
      p.pos == nullptr || p.inv_freq == nullptr || p.q == nullptr || p.k_cache == nullptr ||
      p.v_cache == nullptr) {
    return Status::InvalidArgument("qkv_rope: bad arguments");
  }
  const unsigned grid = static_cast<unsigned>(p.n);
  if (precision == Precision::kBF16) {
    QkvRopeKernel<__nv_bfloat16><<<grid, 256, 0, stream>>>(p);
  } else {
    QkvRopeKernel<__half><<<grid, 256, 0, stream>>>(p);
  }
  return CudaStatus(cudaGetLastError(), "QkvRopeKernel");
}

Status LaunchRopeKeys(const void* src, void* dst, int64_t tokens, int kv_heads, int head_dim, int rotary_dim,
                      const float* inv_freq, int64_t first_position, Precision precision, cudaStream_t stream) {
  if (tokens == 0) return Status::OK();
  if (tokens < 0 || kv_heads <= 0 || head_dim <= 0 || rotary_dim <= 0 || rotary_dim % 2 != 0 ||
      rotary_dim > head_dim || rotary_dim / 2 > kMaxHalf || src == nullptr || dst == nullptr ||
      inv_freq == nullptr || first_position < 0) {
    return Status::InvalidArgument("rope_keys: bad arguments");
  }
  const unsigned grid = static_cast<unsigned>(tokens);
  if (precision == Precision::kBF16) {
    RopeKeysKernel<<<grid, 256, 0, stream>>>(static_cast<const __nv_bfloat16*>(src), static_cast<__nv_bfloat16*>(dst),
                                             kv_heads, head_dim, rotary_dim, inv_freq, first_position);
  } else {
    RopeKeysKernel<<<grid, 256, 0, stream>>>(static_cast<const __half*>(src), static_cast<__half*>(dst), kv_heads,
                                             head_dim, rotary_dim, inv_freq, first_position);
  }
  return CudaStatus(cudaGetLastError(), "RopeKeysKernel");
}

}  // namespace blockkv::cuda
