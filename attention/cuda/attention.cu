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

// Two variants, both 4 warps (two CTAs per multiprocessor):
//   kMT = 1: 64 rows, each warp 16 rows with its Q fragments held in registers (decode, short blocks);
//   kMT = 2: 128 rows, each warp 32 rows (two m16 tiles) that share every K and V fragment it reads from
//            shared memory, which halves the ldmatrix traffic per product (the limit of the 16-rows-a-warp
//            layout); Q fragments are re-read from shared memory per tile to stay within 255 registers.
// Both double-buffer K/V (cp.async).
constexpr int kStages = 2;

template <int D, int kWarps, int kMT>
constexpr int SmemBytes() {
  return (16 * kWarps * kMT + 2 * kStages * kBlockN) * (D + kPad) * 2;  // Q tile + K and V tiles per stage
}

// exp2 on the MUFU unit (inputs are <= 0 or -inf here; denormal results flush to 0).
__device__ __forceinline__ float FastExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// One CTA: kWarps * kMT * 16 query rows (token, head-in-group) of one KV head, over the keys of one split.
// Each warp owns kMT * 16 rows; S = Q K^T and O += P V run on m16n8k16 tensor-core products with fp32
// accumulators; the softmax runs online in the log2 domain. Warps whose rows are all past the end skip
// the arithmetic (they still help load tiles).
template <typename T, int D, int kWarps, int kMT>
__global__ void __launch_bounds__(kWarps * 32, 2)
    AttentionKernel(const AttnParams p, const int split_keys, float* const o_partial, float* const lse_partial) {
  constexpr int kWarpRows = 16 * kMT;
  constexpr int kBlockM = kWarpRows * kWarps;
  constexpr int kThreads = kWarps * 32;
  constexpr int kLds = D + kPad;    // shared-memory row stride, elements
  constexpr int kChunks = D / 8;    // 16-byte chunks per row
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

  // This thread's rows: lane / 4 and lane / 4 + 8 of each of its warp's kMT m16 tiles.
  const int warp_m0 = m0 + warp * kWarpRows;
  const bool warp_active = warp_m0 < rows;
  // (Recomputed where needed rather than kept in registers: the kMT = 2 variant is at the 255 limit.)
  auto row_of = [&](int mt, int half) { return warp_m0 + mt * 16 + half * 8 + lane / 4; };

  float o[kMT][D / 8][4];
  float m_a[kMT], m_b[kMT], l_a[kMT], l_b[kMT];
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt) {
    m_a[mt] = m_b[mt] = -INFINITY;
    l_a[mt] = l_b[mt] = 0.0f;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.0f;
  }

  auto store_rows = [&]() {
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = row_of(mt, half);
        if (row >= rows) continue;
        const float l = half == 0 ? l_a[mt] : l_b[mt];
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        const int t = row / group, h = kvh * group + row % group;
        const int64_t qrow = static_cast<int64_t>(seq.q_begin + t) * p.heads + h;
        if (num_splits == 1) {
          T* out = static_cast<T*>(p.out) + qrow * D;
#pragma unroll
          for (int db = 0; db < D / 8; ++db) {
            const int d = db * 8 + 2 * (lane % 4);
            *reinterpret_cast<uint32_t*>(out + d) =
                dev::Pack2<T>(o[mt][db][2 * half] * inv, o[mt][db][2 * half + 1] * inv);
          }
        } else {
          const int64_t prow = static_cast<int64_t>(split) * p.q_tokens * p.heads + qrow;
          float* out = o_partial + prow * D;
#pragma unroll
          for (int db = 0; db < D / 8; ++db) {
            const int d = db * 8 + 2 * (lane % 4);
            *reinterpret_cast<float2*>(out + d) =
                make_float2(o[mt][db][2 * half] * inv, o[mt][db][2 * half + 1] * inv);
          }
          if (lane % 4 == 0) {
            const float m = half == 0 ? m_a[mt] : m_b[mt];
            lse_partial[prow] = l > 0.0f ? m + __log2f(l) : -INFINITY;
          }
        }
      }
    }
  };

  if (kv_lo >= kv_hi) {  // this split lies past every key of the tile: an empty partial
    store_rows();
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
  uint32_t qf[kMT == 1 ? D / 16 : 1][4];  // kMT == 1: the warp's Q fragments, loaded once
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
    if (warp_active) {
      if constexpr (kMT == 1) {
        if (it == 0) {
#pragma unroll
          for (int kk = 0; kk < D / 16; ++kk) {
            const T* a = s_q + (warp * 16 + lane % 16) * kLds + kk * 16 + (lane / 16) * 8;
            dev::LdMatrixX4(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], a);
          }
        }
      }
      const T* sk = s_k + buf * kBlockN * kLds;
      const T* sv = s_v + buf * kBlockN * kLds;

      // S = Q K^T: per m16 tile (16 rows, 64 keys) as 8 blocks of 8 keys; each K fragment serves all kMT tiles.
      float s[kMT][kBlockN / 8][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
        for (int nb = 0; nb < kBlockN / 8; ++nb) s[mt][nb][0] = s[mt][nb][1] = s[mt][nb][2] = s[mt][nb][3] = 0.0f;
      }
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t qa[kMT][4];
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          if constexpr (kMT == 1) {
            qa[mt][0] = qf[kk][0], qa[mt][1] = qf[kk][1], qa[mt][2] = qf[kk][2], qa[mt][3] = qf[kk][3];
          } else {
            const T* a = s_q + (warp * kWarpRows + mt * 16 + lane % 16) * kLds + kk * 16 + (lane / 16) * 8;
            dev::LdMatrixX4(qa[mt][0], qa[mt][1], qa[mt][2], qa[mt][3], a);
          }
        }
#pragma unroll
        for (int nb2 = 0; nb2 < kBlockN / 16; ++nb2) {
          uint32_t b0, b1, b2, b3;
          const T* bp = sk + (nb2 * 16 + lane % 8 + (lane / 16) * 8) * kLds + kk * 16 + ((lane / 8) % 2) * 8;
          dev::LdMatrixX4(b0, b1, b2, b3, bp);
#pragma unroll
          for (int mt = 0; mt < kMT; ++mt) {
            dev::Mma16816<T>(s[mt][2 * nb2], qa[mt], b0, b1);
            dev::Mma16816<T>(s[mt][2 * nb2 + 1], qa[mt], b2, b3);
          }
        }
      }
      const bool need_mask = k0 + kBlockN > unmasked_end;
      uint32_t pf[kMT][kBlockN / 16][4];  // P as A fragments of 16 keys each
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
        for (int nb = 0; nb < kBlockN / 8; ++nb) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            float x = s[mt][nb][e] * scale_log2;
            if (need_mask) {
              const int key = k0 + nb * 8 + 2 * (lane % 4) + (e & 1);
              const int qpos = seq.past + row_of(mt, e < 2 ? 0 : 1) / group;
              if (key >= kv_hi || key > qpos) x = -INFINITY;
            }
            s[mt][nb][e] = x;
          }
        }
        // Online softmax: new running max per row (reduced over the 4 threads of a quad), rescale O and l.
        float mx_a = m_a[mt], mx_b = m_b[mt];
#pragma unroll
        for (int nb = 0; nb < kBlockN / 8; ++nb) {
          mx_a = fmaxf(mx_a, fmaxf(s[mt][nb][0], s[mt][nb][1]));
          mx_b = fmaxf(mx_b, fmaxf(s[mt][nb][2], s[mt][nb][3]));
        }
#pragma unroll
        for (int off = 1; off < 4; off <<= 1) {
          mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, off));
          mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, off));
        }
        const float base_a = mx_a == -INFINITY ? 0.0f : mx_a;
        const float base_b = mx_b == -INFINITY ? 0.0f : mx_b;
        const float corr_a = FastExp2(m_a[mt] - base_a), corr_b = FastExp2(m_b[mt] - base_b);
        m_a[mt] = mx_a;
        m_b[mt] = mx_b;
        float sum_a = 0.0f, sum_b = 0.0f;
#pragma unroll
        for (int nb = 0; nb < kBlockN / 8; ++nb) {
          const float p0 = FastExp2(s[mt][nb][0] - base_a), p1 = FastExp2(s[mt][nb][1] - base_a);
          const float p2 = FastExp2(s[mt][nb][2] - base_b), p3 = FastExp2(s[mt][nb][3] - base_b);
          sum_a += p0 + p1;
          sum_b += p2 + p3;
          pf[mt][nb / 2][(nb % 2) * 2 + 0] = dev::Pack2<T>(p0, p1);
          pf[mt][nb / 2][(nb % 2) * 2 + 1] = dev::Pack2<T>(p2, p3);
        }
        l_a[mt] = l_a[mt] * corr_a + sum_a;
        l_b[mt] = l_b[mt] * corr_b + sum_b;
#pragma unroll
        for (int db = 0; db < D / 8; ++db) {
          o[mt][db][0] *= corr_a;
          o[mt][db][1] *= corr_a;
          o[mt][db][2] *= corr_b;
          o[mt][db][3] *= corr_b;
        }
      }
      // O += P V; each V fragment serves all kMT tiles.
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) {
#pragma unroll
        for (int db2 = 0; db2 < D / 16; ++db2) {
          uint32_t b0, b1, b2, b3;
          const T* bp = sv + (kk * 16 + lane % 8 + ((lane / 8) % 2) * 8) * kLds + db2 * 16 + (lane / 16) * 8;
          dev::LdMatrixX4Trans(b0, b1, b2, b3, bp);
#pragma unroll
          for (int mt = 0; mt < kMT; ++mt) {
            dev::Mma16816<T>(o[mt][2 * db2], pf[mt][kk], b0, b1);
            dev::Mma16816<T>(o[mt][2 * db2 + 1], pf[mt][kk], b2, b3);
          }
        }
      }
    }
    __syncthreads();  // the next iteration's load overwrites the buffer read here
  }
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
      l_a[mt] += __shfl_xor_sync(0xffffffffu, l_a[mt], off);
      l_b[mt] += __shfl_xor_sync(0xffffffffu, l_b[mt], off);
    }
  }
  store_rows();
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

template <typename T, int D, int kMT>
Status Launch(const AttnParams& p, int split_keys, cudaStream_t stream) {
  constexpr int kWarps = 4;
  constexpr int kSmem = SmemBytes<D, kWarps, kMT>();
  static bool configured = false;  // the attribute is per function; setting it twice is harmless
  if (!configured) {
    CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(AttentionKernel<T, D, kWarps, kMT>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
    configured = true;
  }
  const int block_m = 16 * kWarps * kMT;
  dim3 grid((p.max_rows + block_m - 1) / block_m, p.kv_heads * p.num_splits, p.num_seqs);
  float* o_partial = p.workspace;
  float* lse_partial =
      p.workspace == nullptr ? nullptr : p.workspace + static_cast<size_t>(p.num_splits) * p.q_tokens * p.heads * D;
  AttentionKernel<T, D, kWarps, kMT><<<grid, kWarps * 32, kSmem, stream>>>(p, split_keys, o_partial, lse_partial);
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
  if (p.head_dim == 128) return wide ? Launch<T, 128, 2>(p, split_keys, stream) : Launch<T, 128, 1>(p, split_keys, stream);
  return wide ? Launch<T, 64, 2>(p, split_keys, stream) : Launch<T, 64, 1>(p, split_keys, stream);
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
  // Fill exactly one wave: both variants (4 warps, <= 255 registers a thread, <= 104 KiB of shared memory)
  // fit two per multiprocessor. A partial extra wave would cost as much as a full one.
  const int64_t slots = static_cast<int64_t>(sm_count) * 2;
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
