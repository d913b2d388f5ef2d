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

// The rotation of one (x_i, x_{i+half}) pair, fp32, with the rounding spelled out so that every kernel
// (and both re-encoding paths, which tests compare bit for bit) computes the same bits.
__device__ __forceinline__ float RotLo(float lo, float hi, float c, float s) { return __fmaf_rn(lo, c, -__fmul_rn(hi, s)); }
__device__ __forceinline__ float RotHi(float lo, float hi, float c, float s) { return __fmaf_rn(hi, c, __fmul_rn(lo, s)); }

// Element d of a rotated head vector x (fp32 arithmetic).
template <typename T>
__device__ __forceinline__ float Rotated(const T* x, const float* bias, int d, int half, const float* c,
                                         const float* s) {
  auto at = [&](int j) { return dev::ToFloat(x[j]) + (bias != nullptr ? bias[j] : 0.0f); };
  if (d < half) return RotLo(at(d), at(d + half), c[d], s[d]);
  if (d < 2 * half) return RotHi(at(d - half), at(d), c[d - half], s[d - half]);
  return at(d);
}

// Rotates one token's keys src -> dst (kv_heads * head_dim elements each) with the angles c/s of its
// position, on threads [tid, tid + nthreads). With head_dim and half multiples of 8 it moves 16 bytes per
// access (each thread rotates 8 pairs at once); otherwise element by element. Same bits either way.
template <typename T>
__device__ __forceinline__ void RotateToken(const T* __restrict__ src, T* __restrict__ dst, int kv_heads, int head_dim,
                                            int half, const float* c, const float* s, int tid, int nthreads) {
  if (head_dim % 8 == 0 && half % 8 == 0) {
    const int pairs = half / 8, rest = (head_dim - 2 * half) / 8;  // 8-element chunks per head
    const int per_head = pairs + rest;
    for (int i = tid; i < kv_heads * per_head; i += nthreads) {
      const int h = i / per_head, j = i % per_head;
      const T* x = src + h * head_dim;
      T* y = dst + h * head_dim;
      if (j < pairs) {
        const int d = j * 8;
        const uint4 lo_raw = *reinterpret_cast<const uint4*>(x + d);
        const uint4 hi_raw = *reinterpret_cast<const uint4*>(x + d + half);
        const T* lo = reinterpret_cast<const T*>(&lo_raw);
        const T* hi = reinterpret_cast<const T*>(&hi_raw);
        uint4 lo_out, hi_out;
        T* lo_o = reinterpret_cast<T*>(&lo_out);
        T* hi_o = reinterpret_cast<T*>(&hi_out);
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          const float a = dev::ToFloat(lo[e]), b = dev::ToFloat(hi[e]);
          lo_o[e] = dev::FromFloat<T>(RotLo(a, b, c[d + e], s[d + e]));
          hi_o[e] = dev::FromFloat<T>(RotHi(a, b, c[d + e], s[d + e]));
        }
        *reinterpret_cast<uint4*>(y + d) = lo_out;
        *reinterpret_cast<uint4*>(y + d + half) = hi_out;
      } else {
        const int d = 2 * half + (j - pairs) * 8;  // past the rotary dims: unchanged
        *reinterpret_cast<uint4*>(y + d) = *reinterpret_cast<const uint4*>(x + d);
      }
    }
  } else {
    const int kvd = kv_heads * head_dim;
    for (int i = tid; i < kvd; i += nthreads) {
      const int h = i / head_dim, d = i % head_dim;
      dst[i] = dev::FromFloat<T>(Rotated(src + h * head_dim, nullptr, d, half, c, s));
    }
  }
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

// Loads 8 consecutive T (16 bytes) as floats, adding 8 bias values when `bias` is set.
template <typename T>
__device__ __forceinline__ void Load8(const T* x, const float* bias, float* out) {
  const uint4 raw = *reinterpret_cast<const uint4*>(x);
  const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int e = 0; e < 8; ++e) out[e] = dev::ToFloat(v[e]) + (bias != nullptr ? bias[e] : 0.0f);
}

template <typename T>
__device__ __forceinline__ void Store8(T* y, const float* in) {
  uint4 raw;
  T* v = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int e = 0; e < 8; ++e) v[e] = dev::FromFloat<T>(in[e]);
  *reinterpret_cast<uint4*>(y) = raw;
}

// QkvRopeKernel with 16-byte accesses (head_dim and rotary_dim / 2 multiples of 8, 16-byte aligned
// buffers): each thread rotates 8 (x_i, x_{i+half}) pairs of a q or k head, or moves 8 values. Same
// arithmetic per element as QkvRopeKernel.
template <typename T>
__global__ void QkvRopeVecKernel(const QkvRopeParams p) {
  __shared__ float c[kMaxHalf], s[kMaxHalf];
  const int64_t t = blockIdx.x;
  const int half = p.rotary_dim / 2, D = p.head_dim;
  const int qd = p.heads * D, kvd = p.kv_heads * D, width = qd + 2 * kvd;
  const int pos = p.pos[t];
  Angles(p.inv_freq, half, static_cast<float>(pos), c, s);
  const T* row = static_cast<const T*>(p.qkv) + t * width;
  const int64_t cache_row = p.rows_at_pos ? pos : t;
  T* q = static_cast<T*>(p.q) + t * qd;
  T* kc = static_cast<T*>(p.k_cache) + cache_row * kvd;
  T* vc = static_cast<T*>(p.v_cache) + cache_row * kvd;
  T* kr = p.k_raw != nullptr ? static_cast<T*>(p.k_raw) + t * kvd : nullptr;
  T* vr = p.v_raw != nullptr ? static_cast<T*>(p.v_raw) + t * kvd : nullptr;
  const int pairs = half / 8, per_head = pairs + (D - 2 * half) / 8;
  const int rot_items = (p.heads + p.kv_heads) * per_head;  // q heads, then k heads
  const int items = rot_items + kvd / 8;                    // then the values, 8 at a time
  for (int i = threadIdx.x; i < items; i += blockDim.x) {
    if (i < rot_items) {
      const int h = i / per_head, j = i % per_head;
      const bool is_k = h >= p.heads;
      const int col = is_k ? qd + (h - p.heads) * D : h * D;  // the head's first column in the row
      const float* b = p.bias != nullptr ? p.bias + col : nullptr;
      T* y = is_k ? kc + (h - p.heads) * D : q + h * D;
      T* raw = is_k && kr != nullptr ? kr + (h - p.heads) * D : nullptr;
      if (j < pairs) {
        const int d = j * 8;
        float lo[8], hi[8], lo_o[8], hi_o[8];
        Load8(row + col + d, b != nullptr ? b + d : nullptr, lo);
        Load8(row + col + d + half, b != nullptr ? b + d + half : nullptr, hi);
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          lo_o[e] = RotLo(lo[e], hi[e], c[d + e], s[d + e]);
          hi_o[e] = RotHi(lo[e], hi[e], c[d + e], s[d + e]);
        }
        Store8(y + d, lo_o);
        Store8(y + d + half, hi_o);
        if (raw != nullptr) {
          Store8(raw + d, lo);
          Store8(raw + d + half, hi);
        }
      } else {
        const int d = 2 * half + (j - pairs) * 8;  // past the rotary dims: unchanged
        float x[8];
        Load8(row + col + d, b != nullptr ? b + d : nullptr, x);
        Store8(y + d, x);
        if (raw != nullptr) Store8(raw + d, x);
      }
    } else {
      const int e = (i - rot_items) * 8;
      float v[8];
      Load8(row + qd + kvd + e, p.bias != nullptr ? p.bias + qd + kvd + e : nullptr, v);
      Store8(vc + e, v);
      if (vr != nullptr) Store8(vr + e, v);
    }
  }
}

template <typename T>
__global__ void RopeKeysKernel(const T* __restrict__ src, T* __restrict__ dst, int kv_heads, int head_dim,
                               int rotary_dim, const float* __restrict__ inv_freq, int64_t first_position) {
  __shared__ float c[kMaxHalf], s[kMaxHalf];
  const int64_t t = blockIdx.x;
  const int half = rotary_dim / 2, kvd = kv_heads * head_dim;
  Angles(inv_freq, half, static_cast<float>(first_position + t), c, s);
  RotateToken(src + t * kvd, dst + t * kvd, kv_heads, head_dim, half, c, s, threadIdx.x, blockDim.x);
}

constexpr int kAppendTokens = 8;  // tokens per CTA of RopeAppendKernel

// grid: (jobs, ceil(max_tokens / kAppendTokens)); each CTA rotates and copies up to kAppendTokens tokens:
// the angles of all its tokens first (one barrier), then 16-byte loads and stores.
template <typename T>
__global__ void RopeAppendKernel(const RopeAppendJob* __restrict__ jobs, int kv_heads, int head_dim, int rotary_dim,
                                 const float* __restrict__ inv_freq) {
  __shared__ float c[kAppendTokens][kMaxHalf], s[kAppendTokens][kMaxHalf];
  const RopeAppendJob job = jobs[blockIdx.x];
  const int half = rotary_dim / 2, kvd = kv_heads * head_dim;
  const int t0 = blockIdx.y * kAppendTokens;
  const int count = min(job.tokens, t0 + kAppendTokens) - t0;
  if (count <= 0) return;
  for (int i = threadIdx.x; i < count * half; i += blockDim.x) {
    const int t = i / half, j = i % half;
    const float angle = inv_freq[j] * static_cast<float>(job.first_position + t0 + t);
    sincosf(angle, &s[t][j], &c[t][j]);
  }
  __syncthreads();
  const size_t base = static_cast<size_t>(t0) * kvd;
  // Keys: the threads split into kAppendTokens groups, one token each.
  const int per_token = blockDim.x / kAppendTokens;
  const int t = threadIdx.x / per_token;
  if (t < count) {
    RotateToken(static_cast<const T*>(job.k_src) + base + static_cast<size_t>(t) * kvd,
                static_cast<T*>(job.k_dst) + base + static_cast<size_t>(t) * kvd, kv_heads, head_dim, half, c[t], s[t],
                threadIdx.x % per_token, per_token);
  }
  // Values: a plain copy of count * kvd elements (kvd * 2 bytes is a multiple of 16 for head_dim % 8 == 0);
  // none when the job has no value source (they were copied to their rows already).
  if (job.v_src == nullptr) return;
  const T* vs = static_cast<const T*>(job.v_src) + base;
  T* vd = static_cast<T*>(job.v_dst) + base;
  if (head_dim % 8 == 0) {
    // Four 16-byte loads in flight per thread before their stores.
    const int chunks = count * kvd / 8;
    const uint4* src4 = reinterpret_cast<const uint4*>(vs);
    uint4* dst4 = reinterpret_cast<uint4*>(vd);
    for (int i0 = threadIdx.x; i0 < chunks; i0 += 4 * blockDim.x) {
      uint4 r[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int i = i0 + u * blockDim.x;
        if (i < chunks) r[u] = src4[i];
      }
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int i = i0 + u * blockDim.x;
        if (i < chunks) dst4[i] = r[u];
      }
    }
  } else {
    for (int i = threadIdx.x; i < count * kvd; i += blockDim.x) vd[i] = vs[i];
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
  auto a16 = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  if (p.head_dim % 8 == 0 && (p.rotary_dim / 2) % 8 == 0 && a16(p.qkv) && a16(p.q) && a16(p.k_cache) &&
      a16(p.v_cache) && a16(p.k_raw) && a16(p.v_raw)) {
    if (precision == Precision::kBF16) {
      QkvRopeVecKernel<__nv_bfloat16><<<grid, 128, 0, stream>>>(p);
    } else {
      QkvRopeVecKernel<__half><<<grid, 128, 0, stream>>>(p);
    }
    return CudaStatus(cudaGetLastError(), "QkvRopeVecKernel");
  }
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
