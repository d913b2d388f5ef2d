#include "attention/cuda/attention.cuh"

#include <algorithm>
#include <climits>
#include <string>

#include "attention/cuda/cuda_status.h"
#include "attention/cuda/device_common.cuh"

namespace blockkv::cuda {
namespace {

constexpr int kBlockN = 64;  // keys per tile
constexpr int kPad = 8;      // elements of padding per shared-memory row: ldmatrix rows hit distinct banks

// K/V pipeline depth: the 128-row variant runs one CTA per multiprocessor (register-bound), so it keeps
// two tiles in flight while computing a third; the 64-row variant (two CTAs per multiprocessor) double-buffers.
template <int kWarps>
__host__ __device__ constexpr int Stages() {
  return kWarps == 8 ? 3 : 2;
}

template <int D, int kWarps>
constexpr int SmemBytes() {
  return (16 * kWarps + 2 * Stages<kWarps>() * kBlockN) * (D + kPad) * 2;  // Q tile + K and V tiles per stage
}

// One CTA: kWarps * 16 query rows (token, head-in-group) of one KV head, over the keys of one split.
// Each warp owns 16 rows; S = Q K^T and O += P V run on m16n8k16 tensor-core products with fp32
// accumulators; the softmax runs online in the log2 domain.
template <typename T, int D, int kWarps>
__global__ void __launch_bounds__(kWarps * 32)
    AttentionKernel(const AttnParams p, const int split_keys, float* const o_partial, float* const lse_partial) {
  constexpr int kBlockM = 16 * kWarps;
  constexpr int kThreads = kWarps * 32;
  constexpr int kLds = D + kPad;    // shared-memory row stride, elements
  constexpr int kChunks = D / 8;    // 16-byte chunks per row
  constexpr int kStages = Stages<kWarps>();
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* s_q = reinterpret_cast<T*>(smem_raw);   // (kBlockM, kLds)
  T* s_k = s_q + kBlockM * kLds;             // (kStages, kBlockN, kLds)
  T* s_v = s_k + kStages * kBlockN * kLds;   // (kStages, kBlockN, kLds)

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int group = p.heads / p.kv_heads;
  const AttnSeq seq = p.seqs[blockIdx.z];
  const int rows = seq.n * group;
  // Heavier (later, causally longer) tiles first.
  const int m0 = (gridDim.x - 1 - blockIdx.x) * kBlockM;
  if (m0 >= rows) return;
  const int num_splits = gridDim.y / p.kv_heads;
  const int kvh = blockIdx.y / num_splits, split = blockIdx.y % num_splits;
  const int last_row = min(m0 + kBlockM, rows) - 1;
  const int tile_kv_end = min(seq.past + seq.n, seq.past + last_row / group + 1);
  const int kv_lo = split * split_keys;
  const int kv_hi = min(tile_kv_end, kv_lo + split_keys);

  const T* __restrict__ q = static_cast<const T*>(p.q);
  const T* __restrict__ kg = static_cast<const T*>(p.k);
  const T* __restrict__ vg = static_cast<const T*>(p.v);
  const int64_t kv_stride = static_cast<int64_t>(p.kv_heads) * D;  // elements per token in k/v

  // This thread's two rows (lane / 4 and lane / 4 + 8 of its warp's 16).
  const int row_a = m0 + warp * 16 + lane / 4, row_b = row_a + 8;
  const int qpos_a = seq.past + row_a / group, qpos_b = seq.past + row_b / group;

  auto store_rows = [&](const float (*o)[4], float l_a, float l_b, float m_a, float m_b) {
    for (int half = 0; half < 2; ++half) {
      const int row = half == 0 ? row_a : row_b;
      if (row >= rows) continue;
      const float l = half == 0 ? l_a : l_b;
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      const int t = row / group, h = kvh * group + row % group;
      const int64_t qrow = static_cast<int64_t>(seq.q_begin + t) * p.heads + h;
      if (num_splits == 1) {
        T* out = static_cast<T*>(p.out) + qrow * D;
#pragma unroll
        for (int db = 0; db < D / 8; ++db) {
          const int d = db * 8 + 2 * (lane % 4);
          *reinterpret_cast<uint32_t*>(out + d) = dev::Pack2<T>(o[db][2 * half] * inv, o[db][2 * half + 1] * inv);
        }
      } else {
        const int64_t prow = static_cast<int64_t>(split) * p.q_tokens * p.heads + qrow;
        float* out = o_partial + prow * D;
#pragma unroll
        for (int db = 0; db < D / 8; ++db) {
          const int d = db * 8 + 2 * (lane % 4);
          *reinterpret_cast<float2*>(out + d) = make_float2(o[db][2 * half] * inv, o[db][2 * half + 1] * inv);
        }
        if (lane % 4 == 0) {
          const float m = half == 0 ? m_a : m_b;
          lse_partial[prow] = l > 0.0f ? m + __log2f(l) : -INFINITY;
        }
      }
    }
  };

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  if (kv_lo >= kv_hi) {  // this split lies past every key of the tile: an empty partial
    store_rows(o, 0.0f, 0.0f, -INFINITY, -INFINITY);
    return;
  }

  // Q tile: row r is (token m0 + r) / group, head kvh * group + (m0 + r) % group; rows past the end are 0.
  for (int c = tid; c < kBlockM * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    T* dst = s_q + r * kLds + col;
    const int row = m0 + r;
    if (row < rows) {
      const int t = row / group, h = kvh * group + row % group;
      dev::CpAsync16(dst, q + (static_cast<int64_t>(seq.q_begin + t) * p.heads + h) * D + col);
    } else {
      *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
    }
  }
  // K and V tile of keys [k0, k0 + kBlockN) into buffer `buf`; keys at or past kv_hi are 0 (a masked
  // probability of 0 times an unwritten NaN would still be NaN).
  auto load_kv = [&](int k0, int buf) {
    T* dk = s_k + buf * kBlockN * kLds;
    T* dv = s_v + buf * kBlockN * kLds;
    for (int c = tid; c < kBlockN * kChunks; c += kThreads) {
      const int r = c / kChunks, col = (c % kChunks) * 8;
      const int key = k0 + r;
      if (key < kv_hi) {
        const int64_t off = (static_cast<int64_t>(seq.kv_begin) + key) * kv_stride + kvh * D + col;
        dev::CpAsync16(dk + r * kLds + col, kg + off);
        dev::CpAsync16(dv + r * kLds + col, vg + off);
      } else {
        *reinterpret_cast<uint4*>(dk + r * kLds + col) = make_uint4(0, 0, 0, 0);
        *reinterpret_cast<uint4*>(dv + r * kLds + col) = make_uint4(0, 0, 0, 0);
      }
    }
  };

  const float scale_log2 = p.scale * 1.4426950408889634f;
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;
  uint32_t qf[D / 16][4];
  const int num_tiles = (kv_hi - kv_lo + kBlockN - 1) / kBlockN;
  // Keys below this index are visible to every row of the tile (no causal mask needed).
  const int unmasked_end = min(kv_hi, seq.past + m0 / group + 1);

  // Tiles it + 1 .. it + kStages - 1 are in flight while tile it is computed.
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < num_tiles) load_kv(kv_lo + s * kBlockN, s);
    dev::CpAsyncCommit();  // an empty group when there is no such tile keeps the wait counts uniform
  }
  for (int it = 0; it < num_tiles; ++it) {
    const int k0 = kv_lo + it * kBlockN, buf = it % kStages;
    const int ahead = it + kStages - 1;
    if (ahead < num_tiles) load_kv(kv_lo + ahead * kBlockN, ahead % kStages);
    dev::CpAsyncCommit();
    dev::CpAsyncWait<kStages - 1>();  // tile it (and Q with it) has landed
    __syncthreads();
    if (it == 0) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const T* a = s_q + (warp * 16 + lane % 16) * kLds + kk * 16 + (lane / 16) * 8;
        dev::LdMatrixX4(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], a);
      }
    }
    const T* sk = s_k + buf * kBlockN * kLds;
    const T* sv = s_v + buf * kBlockN * kLds;

    // S = Q K^T: (16 rows, 64 keys) per warp as 8 blocks of 8 keys.
    float s[kBlockN / 8][4];
#pragma unroll
    for (int nb = 0; nb < kBlockN / 8; ++nb) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int nb2 = 0; nb2 < kBlockN / 16; ++nb2) {
        uint32_t b0, b1, b2, b3;
        const T* bp = sk + (nb2 * 16 + lane % 8 + (lane / 16) * 8) * kLds + kk * 16 + ((lane / 8) % 2) * 8;
        dev::LdMatrixX4(b0, b1, b2, b3, bp);
        dev::Mma16816<T>(s[2 * nb2], qf[kk], b0, b1);
        dev::Mma16816<T>(s[2 * nb2 + 1], qf[kk], b2, b3);
      }
    }
    const bool need_mask = k0 + kBlockN > unmasked_end;
#pragma unroll
    for (int nb = 0; nb < kBlockN / 8; ++nb) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[nb][e] * scale_log2;
        if (need_mask) {
          const int key = k0 + nb * 8 + 2 * (lane % 4) + (e & 1);
          const int qpos = e < 2 ? qpos_a : qpos_b;
          if (key >= kv_hi || key > qpos) x = -INFINITY;
        }
        s[nb][e] = x;
      }
    }
    // Online softmax: new running max per row (reduced over the 4 threads of a quad), rescale O and l.
    float mx_a = m_a, mx_b = m_b;
#pragma unroll
    for (int nb = 0; nb < kBlockN / 8; ++nb) {
      mx_a = fmaxf(mx_a, fmaxf(s[nb][0], s[nb][1]));
      mx_b = fmaxf(mx_b, fmaxf(s[nb][2], s[nb][3]));
    }
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
      mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, off));
      mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, off));
    }
    const float base_a = mx_a == -INFINITY ? 0.0f : mx_a;
    const float base_b = mx_b == -INFINITY ? 0.0f : mx_b;
    const float corr_a = exp2f(m_a - base_a), corr_b = exp2f(m_b - base_b);
    m_a = mx_a;
    m_b = mx_b;
    float sum_a = 0.0f, sum_b = 0.0f;
    uint32_t pf[kBlockN / 16][4];  // P as A fragments of 16 keys each
#pragma unroll
    for (int nb = 0; nb < kBlockN / 8; ++nb) {
      const float p0 = exp2f(s[nb][0] - base_a), p1 = exp2f(s[nb][1] - base_a);
      const float p2 = exp2f(s[nb][2] - base_b), p3 = exp2f(s[nb][3] - base_b);
      sum_a += p0 + p1;
      sum_b += p2 + p3;
      pf[nb / 2][(nb % 2) * 2 + 0] = dev::Pack2<T>(p0, p1);
      pf[nb / 2][(nb % 2) * 2 + 1] = dev::Pack2<T>(p2, p3);
    }
    l_a = l_a * corr_a + sum_a;
    l_b = l_b * corr_b + sum_b;
#pragma unroll
    for (int db = 0; db < D / 8; ++db) {
      o[db][0] *= corr_a;
      o[db][1] *= corr_a;
      o[db][2] *= corr_b;
      o[db][3] *= corr_b;
    }
    // O += P V.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
#pragma unroll
      for (int db2 = 0; db2 < D / 16; ++db2) {
        uint32_t b0, b1, b2, b3;
        const T* bp = sv + (kk * 16 + lane % 8 + ((lane / 8) % 2) * 8) * kLds + db2 * 16 + (lane / 16) * 8;
        dev::LdMatrixX4Trans(b0, b1, b2, b3, bp);
        dev::Mma16816<T>(o[2 * db2], pf[kk], b0, b1);
        dev::Mma16816<T>(o[2 * db2 + 1], pf[kk], b2, b3);
      }
    }
    __syncthreads();  // the next iteration's load overwrites the buffer read here
  }
#pragma unroll
  for (int off = 1; off < 4; off <<= 1) {
    l_a += __shfl_xor_sync(0xffffffffu, l_a, off);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, off);
  }
  store_rows(o, l_a, l_b, m_a, m_b);
}

// Merges split-KV partials: one CTA per (query token, head) row, one thread per dimension.
//   o_partial: (splits, q_tokens * heads, D) normalized per split; lse_partial: (splits, q_tokens * heads)
//   in log2 units; out: (q_tokens * heads, D).
template <typename T>
__global__ void MergeSplitsKernel(const float* __restrict__ o_partial, const float* __restrict__ lse_partial,
                                  int splits, int64_t rows, int d, T* __restrict__ out) {
  const int64_t row = blockIdx.x;
  float mx = -INFINITY;
  for (int s = 0; s < splits; ++s) mx = fmaxf(mx, lse_partial[s * rows + row]);
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    float acc = 0.0f, wsum = 0.0f;
    if (mx != -INFINITY) {
      for (int s = 0; s < splits; ++s) {
        const float lse = lse_partial[s * rows + row];
        if (lse == -INFINITY) continue;
        const float w = exp2f(lse - mx);
        wsum += w;
        acc += w * o_partial[(s * rows + row) * d + i];
      }
    }
    out[row * d + i] = dev::FromFloat<T>(wsum > 0.0f ? acc / wsum : 0.0f);
  }
}

template <typename T, int D, int kWarps>
Status Launch(const AttnParams& p, int split_keys, cudaStream_t stream) {
  constexpr int kSmem = SmemBytes<D, kWarps>();
  static bool configured = false;  // the attribute is per function; setting it twice is harmless
  if (!configured) {
    CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(AttentionKernel<T, D, kWarps>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
    configured = true;
  }
  const int block_m = 16 * kWarps;
  dim3 grid((p.max_rows + block_m - 1) / block_m, p.kv_heads * p.num_splits, p.num_seqs);
  float* o_partial = p.workspace;
  float* lse_partial =
      p.workspace == nullptr ? nullptr : p.workspace + static_cast<size_t>(p.num_splits) * p.q_tokens * p.heads * D;
  AttentionKernel<T, D, kWarps><<<grid, kWarps * 32, kSmem, stream>>>(p, split_keys, o_partial, lse_partial);
  RETURN_IF_ERROR(CudaStatus(cudaGetLastError(), "AttentionKernel"));
  if (p.num_splits > 1) {
    const int64_t rows = static_cast<int64_t>(p.q_tokens) * p.heads;
    MergeSplitsKernel<T><<<static_cast<unsigned>(rows), D, 0, stream>>>(
        o_partial, lse_partial, p.num_splits, rows, D, static_cast<T*>(p.out));
    RETURN_IF_ERROR(CudaStatus(cudaGetLastError(), "MergeSplitsKernel"));
  }
  return Status::OK();
}

template <typename T>
Status LaunchTyped(const AttnParams& p, int split_keys, bool wide, cudaStream_t stream) {
  if (p.head_dim == 128) return wide ? Launch<T, 128, 8>(p, split_keys, stream) : Launch<T, 128, 4>(p, split_keys, stream);
  return wide ? Launch<T, 64, 8>(p, split_keys, stream) : Launch<T, 64, 4>(p, split_keys, stream);
}

int BlockRows(int max_rows) { return max_rows > 64 ? 128 : 64; }

__global__ void AdvanceDecodeKernel(int32_t* token, const int32_t* next, int32_t* pos, AttnSeq* seq) {
  *token = *next;
  *pos += 1;
  seq->past += 1;
}

}  // namespace

int AttentionSplits(int max_rows, int max_keys, int kv_heads, int num_seqs, int sm_count) {
  const int block_m = BlockRows(max_rows);
  const int64_t ctas = static_cast<int64_t>((max_rows + block_m - 1) / block_m) * kv_heads * num_seqs;
  if (ctas >= sm_count || max_keys <= 512) return 1;
  // Fill exactly one wave: the 128-row CTAs (215 registers a thread) fit one per multiprocessor, the
  // 64-row ones two. A partial extra wave would cost as much as a full one.
  const int64_t slots = static_cast<int64_t>(sm_count) * (block_m == 128 ? 1 : 2);
  int64_t splits = slots / ctas;
  splits = std::min<int64_t>({splits, (max_keys + 255) / 256, 128});
  return static_cast<int>(std::max<int64_t>(splits, 1));
}

Status LaunchAttention(AttnParams p, Precision precision, int sm_count, cudaStream_t stream) {
  if (p.head_dim != 64 && p.head_dim != 128) {
    return Status::NotSupported("attention kernel supports head_dim 64 and 128, not " +
                                std::to_string(p.head_dim));
  }
  if (p.kv_heads <= 0 || p.heads % p.kv_heads != 0 || p.num_seqs <= 0 || p.max_rows <= 0 ||
      p.max_keys <= 0 || p.q == nullptr || p.k == nullptr || p.v == nullptr || p.out == nullptr ||
      p.seqs == nullptr) {
    return Status::InvalidArgument("attention: bad shapes or null pointers");
  }
  if (p.num_splits <= 0) p.num_splits = AttentionSplits(p.max_rows, p.max_keys, p.kv_heads, p.num_seqs, sm_count);
  int split_keys = INT_MAX / 2;
  if (p.num_splits > 1) {
    if (p.workspace == nullptr) return Status::InvalidArgument("attention: split-KV needs a workspace");
    split_keys = (p.max_keys + p.num_splits - 1) / p.num_splits;
    split_keys = (split_keys + kBlockN - 1) / kBlockN * kBlockN;
  }
  const bool wide = BlockRows(p.max_rows) == 128;
  return precision == Precision::kBF16 ? LaunchTyped<__nv_bfloat16>(p, split_keys, wide, stream)
                                       : LaunchTyped<__half>(p, split_keys, wide, stream);
}

Status LaunchAdvanceDecode(int32_t* token, const int32_t* next, int32_t* pos, AttnSeq* seq, cudaStream_t stream) {
  if (token == nullptr || next == nullptr || pos == nullptr || seq == nullptr) {
    return Status::InvalidArgument("advance_decode: null pointer");
  }
  AdvanceDecodeKernel<<<1, 1, 0, stream>>>(token, next, pos, seq);
  return CudaStatus(cudaGetLastError(), "AdvanceDecodeKernel");
}

}  // namespace blockkv::cuda
