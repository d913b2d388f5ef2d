#include "attention/cuda/attention.cuh"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <climits>
#include <string>

#include "attention/cuda/cuda_status.h"
#include "attention/cuda/device_common.cuh"
#include "attention/cuda/wgmma.cuh"

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

// Shared by both kernels.
//
// Q tile of `tile_rows` rows into shared memory (row stride `ld` elements): row r is query token
// (m0 + r) / group, head kvh * group + (m0 + r) % group; rows at or past `rows` are zeros.
template <typename T, int D>
__device__ __forceinline__ void LoadQTile(T* s_q, int ld, int tile_rows, const AttnParams& p, const AttnSeq& seq,
                                          int kvh, int group, int m0, int rows, int tid, int threads) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  const T* __restrict__ q = static_cast<const T*>(p.q);
  for (int c = tid; c < tile_rows * kChunks; c += threads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    T* dst = s_q + r * ld + col;
    const int row = m0 + r;
    if (row < rows) {
      const int t = row / group, h = kvh * group + row % group;
      dev::CpAsync16(dst, q + (static_cast<int64_t>(seq.q_begin + t) * p.heads + h) * D + col);
    } else {
      *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
    }
  }
}

// Writes one row's result from a thread's accumulators: `o` holds, for each 8-column block db, the
// mma/wgmma accumulator quad o[db * 4 + 0..3] (columns 2 * (lane % 4) + {0, 1} of rows lane / 4 and
// lane / 4 + 8; `half` picks the row). Unsplit: the normalized row in T into p.out; split: the normalized
// partial in fp32 and (once per row) its log2-domain log-sum-exp.
template <typename T, int D>
__device__ __forceinline__ void StoreRow(const AttnParams& p, const AttnSeq& seq, int kvh, int group, int row,
                                         int split, int num_splits, int lane, const float* o, int half, float m,
                                         float l, float* o_partial, float* lse_partial) {
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  const int t = row / group, h = kvh * group + row % group;
  const int64_t qrow = static_cast<int64_t>(seq.q_begin + t) * p.heads + h;
  if (num_splits == 1) {
    T* out = static_cast<T*>(p.out) + qrow * D;
#pragma unroll
    for (int db = 0; db < D / 8; ++db) {
      *reinterpret_cast<uint32_t*>(out + db * 8 + 2 * (lane % 4)) =
          dev::Pack2<T>(o[db * 4 + 2 * half] * inv, o[db * 4 + 2 * half + 1] * inv);
    }
  } else {
    const int64_t prow = static_cast<int64_t>(split) * p.q_tokens * p.heads + qrow;
    float* out = o_partial + prow * D;
#pragma unroll
    for (int db = 0; db < D / 8; ++db) {
      *reinterpret_cast<float2*>(out + db * 8 + 2 * (lane % 4)) =
          make_float2(o[db * 4 + 2 * half] * inv, o[db * 4 + 2 * half + 1] * inv);
    }
    if (lane % 4 == 0) lse_partial[prow] = l > 0.0f ? m + __log2f(l) : -INFINITY;
  }
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
        StoreRow<T, D>(p, seq, kvh, group, row, split, num_splits, lane, &o[mt][0][0], half,
                       half == 0 ? m_a[mt] : m_b[mt], half == 0 ? l_a[mt] : l_b[mt], o_partial, lse_partial);
      }
    }
  };

  if (kv_lo >= kv_hi) {  // this split lies past every key of the tile: an empty partial
    store_rows();
    return;
  }

  LoadQTile<T, D>(s_q, kLds, kBlockM, p, seq, kvh, group, m0, rows, tid, kThreads);
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

// ---- Hopper variant: the same computation on warpgroup MMAs (wgmma) ----
//
// One CTA = two warpgroups = 128 rows of one KV head (64 a warpgroup) over the keys of one split, one CTA
// per multiprocessor. Keys stream in tiles of 64 through a 5-slot cp.async ring in the 128B-swizzled
// layout wgmma reads directly (wgmma.cuh), three tiles ahead of the one being computed; both warpgroups
// use every tile. The ring runs on per-slot mbarriers (full: every thread's copies landed; empty: every
// thread is done), not on CTA barriers, so the warpgroups drift apart and one's softmax overlaps the
// other's products. Q is loaded into registers as wgmma A fragments (ldmatrix from a padded tile).
// S = Q K^T is m64n64k16 with K K-major; O += P V is m64n{D}k16 with P from registers (converted from the
// S accumulators in place, the FlashAttention-2 trick) and V MN-major; S of the next tile is issued before
// P V of this one (FlashAttention-3's intra-warpgroup overlap). Each thread owns the same rows and columns
// as in the mma.sync kernel (rows lane / 4 and lane / 4 + 8 of its warp's 16), so the masking, online
// softmax and output code match. docs/cuda.md has the measurements behind each of these choices.
constexpr int kWgGroups = 2;                 // warpgroups per CTA
constexpr int kWgRows = 64 * kWgGroups;      // rows per CTA
constexpr int kWgKeys = 64;                  // keys per tile
constexpr int kWgStages = 5;                 // tiles in shared memory
constexpr int kWgAhead = kWgStages - 2;      // tiles loaded ahead of the one whose P V runs
static_assert(kWgAhead >= 2 && kWgAhead < kWgStages, "a step waits for tile it + 1 and refills tile it - 2's slot");
static_assert(kWgKeys == kBlockN, "both kernels round split sizes to kBlockN");

template <int D>
constexpr int WgTileBytes() {
  return kWgKeys * D * 2;  // one K or V tile, swizzled panels of 64 keys x 128 bytes
}
template <int D>
constexpr int WgSmemBytes() {
  // align slack, K, V, Q, then the ring's full and empty mbarriers
  return 1024 + 2 * kWgStages * WgTileBytes<D>() + kWgRows * (D + kPad) * 2 + 2 * kWgStages * 8;
}

template <typename T, int D>
__global__ void __launch_bounds__(128 * kWgGroups, 1)
    WgmmaAttentionKernel(const AttnParams p, const int split_keys, float* const o_partial, float* const lse_partial) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int kThreads = 128 * kWgGroups;
  constexpr int kLdq = D + kPad;
  constexpr int kChunks = D / 8;
  constexpr int kTile = WgTileBytes<D>();
  constexpr int kPanel = kWgKeys * 128;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t raw = static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw));
  const uint32_t base = (raw + 1023u) & ~1023u;  // the swizzle atoms must be 1024-byte aligned
  const uint32_t s_k = base, s_v = base + kWgStages * kTile;
  T* s_q = reinterpret_cast<T*>(smem_raw + (base - raw) + 2 * kWgStages * kTile);
  // full[i]: ring slot i's tile has landed (every thread's copies); empty[i]: every thread is done with it.
  const uint32_t full_bar = s_k + 2 * kWgStages * kTile + kWgRows * kLdq * 2, empty_bar = full_bar + kWgStages * 8;

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int group = p.heads / p.kv_heads;
  const AttnSeq seq = p.seqs[blockIdx.z];
  const int rows = seq.n * group;
  const int m0 = (gridDim.x - 1 - blockIdx.x) * kWgRows;  // heavier (later) tiles first
  if (m0 >= rows) return;
  const int num_splits = gridDim.y / p.kv_heads;
  const int kvh = blockIdx.y / num_splits, split = blockIdx.y % num_splits;
  const int last_row = min(m0 + kWgRows, rows) - 1;
  const int tile_kv_end = min(seq.past + seq.n, seq.past + last_row / group + 1);
  const int kv_lo = split * split_keys;
  const int kv_hi = min(tile_kv_end, kv_lo + split_keys);

  const T* __restrict__ kg = static_cast<const T*>(p.k);
  const T* __restrict__ vg = static_cast<const T*>(p.v);
  const int64_t kv_stride = static_cast<int64_t>(p.kv_heads) * D;
  const int wg_m0 = m0 + (warp / 4) * 64;  // this warpgroup's first row
  const bool wg_active = wg_m0 < rows;     // uniform over the warpgroup, as wgmma requires
  const int row_a = wg_m0 + (warp % 4) * 16 + lane / 4, row_b = row_a + 8;

  float o[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.0f;
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;

  auto store_rows = [&]() {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = half == 0 ? row_a : row_b;
      if (row >= rows) continue;
      StoreRow<T, D>(p, seq, kvh, group, row, split, num_splits, lane, o, half, half == 0 ? m_a : m_b,
                     half == 0 ? l_a : l_b, o_partial, lse_partial);
    }
  };

  if (kv_lo >= kv_hi) {
    store_rows();
    return;
  }

  LoadQTile<T, D>(s_q, kLdq, kWgRows, p, seq, kvh, group, m0, rows, tid, kThreads);
  const int num_tiles = (kv_hi - kv_lo + kWgKeys - 1) / kWgKeys;
  // Each thread copies one fixed 16-byte column chunk of rows r0, r0 + kRowStep, ... of every K and V
  // tile. kRowStep is a multiple of 8, so the chunk's swizzled position is the same in each of its rows and
  // the addresses advance by constants (the per-chunk index arithmetic was a large share of the kernel's
  // instructions).
  constexpr int kRowStep = kThreads / kChunks;
  constexpr int kPasses = kWgKeys / kRowStep;
  static_assert(kRowStep % 8 == 0 && kWgKeys % kRowStep == 0, "load pattern");
  const int r0 = tid / kChunks, chunk = tid % kChunks;
  const uint32_t dst0 = dev::SwizzledChunk(kWgKeys, r0, chunk);
  const int64_t src0 = (static_cast<int64_t>(seq.kv_begin) + kv_lo + r0) * kv_stride + kvh * D + chunk * 8;
  // Tile i of this split into ring slot i % kWgStages (keys at or past kv_hi zero-filled). The ring runs on
  // mbarriers rather than CTA barriers, so the two warpgroups are not held in lockstep: one's softmax can
  // overlap the other's products. A slot is refilled once every thread has released its previous tile
  // (empty), and a tile is consumed once every thread's copies of it have landed (full).
  if (tid == 0) {
    for (int i = 0; i < kWgStages; ++i) {
      dev::MbarInit(full_bar + i * 8, kThreads);
      dev::MbarInit(empty_bar + i * 8, kThreads);
    }
    dev::MbarInitFence();
  }
  auto load_tile = [&](int i) {
    if (i >= num_tiles) return;
    const int slot = i % kWgStages, use = i / kWgStages;
    if (use > 0) dev::MbarWait(empty_bar + slot * 8, (use - 1) & 1);
    const uint32_t dst = slot * kTile + dst0;
    const int64_t src = src0 + static_cast<int64_t>(i) * kWgKeys * kv_stride;
    const int key = kv_lo + i * kWgKeys + r0;
#pragma unroll
    for (int pass = 0; pass < kPasses; ++pass) {
      const bool valid = key + pass * kRowStep < kv_hi;
      const int64_t off = valid ? src + static_cast<int64_t>(pass) * kRowStep * kv_stride : 0;
      dev::CpAsync16Zfill(s_k + dst + pass * kRowStep * 128, kg + off, valid);
      dev::CpAsync16Zfill(s_v + dst + pass * kRowStep * 128, vg + off, valid);
    }
    dev::MbarArriveOnCpAsync(full_bar + slot * 8);
  };
  auto wait_tile = [&](int i) {
    dev::MbarWait(full_bar + (i % kWgStages) * 8, (i / kWgStages) & 1);
    dev::FenceProxyAsync();  // the other threads' copies, seen through the barrier, visible to wgmma's reads
  };
  auto release_tile = [&](int i) { dev::MbarArrive(empty_bar + (i % kWgStages) * 8); };

  dev::CpAsyncCommit();      // Q is the one cp.async group
  __syncthreads();           // the barriers are initialized
  for (int i = 0; i < kWgAhead; ++i) load_tile(i);

  // Q fragments into registers. head_dim 128: once, before the loop. head_dim 64: again for every tile,
  // because there ptxas (CUDA 13.0) gave the loop-carried Q registers to P (the S and P·V products are
  // then both m64n64k16), so from the second tile on S was computed from the previous tile's P. Seen in
  // the SASS; the per-tile reload costs 4 ldmatrix a thread.
  dev::CpAsyncWait<0>();
  __syncthreads();
  uint32_t qf[D / 16][4];
  auto load_q = [&]() {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const T* a = s_q + ((warp / 4) * 64 + (warp % 4) * 16 + lane % 16) * kLdq + kk * 16 + (lane / 16) * 8;
      dev::LdMatrixX4(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], a);
    }
  };
  load_q();

  const float scale_log2 = p.scale * 1.4426950408889634f;
  const int unmasked_end = min(kv_hi, seq.past + m0 / group + 1);
  const int qpos_a = seq.past + row_a / group, qpos_b = seq.past + row_b / group;

  // Issues S = Q K^T of tile i (64 rows x 64 keys) as one wgmma group; the caller waits for it.
  auto issue_s = [&](float (&s)[kWgKeys / 2], int i) {
    if constexpr (D == 64) {
      if (i > 0) load_q();
    }
    const uint32_t slot = (i % kWgStages) * kTile;
#pragma unroll
    for (int e = 0; e < kWgKeys / 2; ++e) s[e] = 0.0f;
    dev::FenceOperands(s);
    dev::FenceOperands(qf);
    dev::WgmmaFence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const uint64_t desc = dev::SmemDesc(s_k + slot + (kk / 4) * kPanel + (kk % 4) * 32, 16, 1024);
      dev::WgmmaRS<T, kWgKeys>::template Run<0>(s, qf[kk], desc, 1);
    }
    dev::WgmmaCommit();
  };
  // Issues O += P V of tile i as one wgmma group.
  auto issue_pv = [&](uint32_t (&pf)[kWgKeys / 16][4], int i) {
    const uint32_t slot = (i % kWgStages) * kTile;
    dev::FenceOperands(o);
    dev::FenceOperands(pf);
    dev::WgmmaFence();
#pragma unroll
    for (int kk = 0; kk < kWgKeys / 16; ++kk) {
      const uint64_t desc = dev::SmemDesc(s_v + slot + kk * 16 * 128, kPanel, 1024);
      dev::WgmmaRS<T, D>::template Run<1>(o, pf[kk], desc, 1);
    }
    dev::WgmmaCommit();
  };
  // Online softmax of tile i's scores in the log2 domain, the scale folded into the exponent's FMA (row
  // maxima over the raw scores, scale > 0; p = 2^(s * scale_log2 - max * scale_log2)): P into pf, the
  // running maxima and sums updated, the corrections for O returned in corr_a / corr_b.
  auto softmax = [&](float (&s)[kWgKeys / 2], int i, uint32_t (&pf)[kWgKeys / 16][4], float& corr_a, float& corr_b) {
    const int k0 = kv_lo + i * kWgKeys;
    if (k0 + kWgKeys > unmasked_end) {
#pragma unroll
      for (int nb = 0; nb < kWgKeys / 8; ++nb) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = k0 + nb * 8 + 2 * (lane % 4) + (e & 1);
          if (key >= kv_hi || key > (e < 2 ? qpos_a : qpos_b)) s[nb * 4 + e] = -INFINITY;
        }
      }
    }
    float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
    for (int nb = 0; nb < kWgKeys / 8; ++nb) {
      mx_a = fmaxf(mx_a, fmaxf(s[nb * 4 + 0], s[nb * 4 + 1]));
      mx_b = fmaxf(mx_b, fmaxf(s[nb * 4 + 2], s[nb * 4 + 3]));
    }
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
      mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, off));
      mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, off));
    }
    mx_a = fmaxf(m_a, mx_a * scale_log2);  // -inf stays -inf
    mx_b = fmaxf(m_b, mx_b * scale_log2);
    const float base_a = mx_a == -INFINITY ? 0.0f : mx_a;
    const float base_b = mx_b == -INFINITY ? 0.0f : mx_b;
    corr_a = FastExp2(m_a - base_a);
    corr_b = FastExp2(m_b - base_b);
    m_a = mx_a;
    m_b = mx_b;
    float sum_a = 0.0f, sum_b = 0.0f;
#pragma unroll
    for (int nb = 0; nb < kWgKeys / 8; ++nb) {
      const float p0 = FastExp2(__fmaf_rn(s[nb * 4 + 0], scale_log2, -base_a));
      const float p1 = FastExp2(__fmaf_rn(s[nb * 4 + 1], scale_log2, -base_a));
      const float p2 = FastExp2(__fmaf_rn(s[nb * 4 + 2], scale_log2, -base_b));
      const float p3 = FastExp2(__fmaf_rn(s[nb * 4 + 3], scale_log2, -base_b));
      sum_a += p0 + p1;
      sum_b += p2 + p3;
      pf[nb / 2][(nb % 2) * 2 + 0] = dev::Pack2<T>(p0, p1);
      pf[nb / 2][(nb % 2) * 2 + 1] = dev::Pack2<T>(p2, p3);
    }
    l_a = l_a * corr_a + sum_a;
    l_b = l_b * corr_b + sum_b;
  };
  // Once the running maxima settle (most tiles of a long row) both corrections are exactly 1: the D / 2
  // multiplications are skipped.
  auto rescale_o = [&](float corr_a, float corr_b) {
    if (corr_a != 1.0f || corr_b != 1.0f) {
#pragma unroll
      for (int db = 0; db < D / 8; ++db) {
        o[db * 4 + 0] *= corr_a;
        o[db * 4 + 1] *= corr_a;
        o[db * 4 + 2] *= corr_b;
        o[db * 4 + 3] *= corr_b;
      }
    }
  };

  // Software pipeline (FlashAttention-3's intra-warpgroup overlap): while the tensor cores run P_i V_i,
  // the warpgroup computes the softmax of tile i + 1, whose S was issued just before.
  float s[kWgKeys / 2];
  uint32_t pf[kWgKeys / 16][4], pf_next[kWgKeys / 16][4];
  float corr_a = 1.0f, corr_b = 1.0f;
  wait_tile(0);
  if (wg_active) {
    issue_s(s, 0);
    dev::WgmmaWait<0>();
    dev::FenceOperands(s);
    softmax(s, 0, pf, corr_a, corr_b);  // O is still 0: no rescale
  }
  // Step `it` issues S of tile it + 1 and P V of tile it, P_it in `cur`, and leaves P_{it+1} in `nxt`.
  // The loop runs two steps per trip with the two P buffers swapped, so no register copy ties them (ptxas
  // then gave both one set of registers, written while P V still read them, and serialized the products);
  // the last tile's P V follows the loop, because a wgmma issued under a branch inside the loop left
  // ptxas unable to tell which group a wait retires (serialized too).
  auto step = [&](int it, uint32_t (&cur)[kWgKeys / 16][4], uint32_t (&nxt)[kWgKeys / 16][4]) {
    load_tile(it + kWgAhead);  // into the slot of tile it + kWgAhead - kWgStages, released by now or soon
    wait_tile(it + 1);
    if (wg_active) {
      issue_s(s, it + 1);
      issue_pv(cur, it);
      dev::WgmmaWait<1>();  // S of tile it + 1 (the older group); P_it V_it may still run
      dev::FenceOperands(s);
      softmax(s, it + 1, nxt, corr_a, corr_b);
      dev::WgmmaWait<0>();
      dev::FenceOperands(o);
      rescale_o(corr_a, corr_b);
    }
    release_tile(it);
  };
  int it = 0;
  for (; it + 2 < num_tiles; it += 2) {
    step(it, pf, pf_next);
    step(it + 1, pf_next, pf);
  }
  if (it + 1 < num_tiles) {
    step(it, pf, pf_next);
#pragma unroll
    for (int kk = 0; kk < kWgKeys / 16; ++kk) {
#pragma unroll
      for (int e = 0; e < 4; ++e) pf[kk][e] = pf_next[kk][e];
    }
  }
  if (wg_active) {  // the last tile was waited for by the last step (or before the loop)
    issue_pv(pf, num_tiles - 1);
    dev::WgmmaWait<0>();
    dev::FenceOperands(o);
  }
  dev::CpAsyncWait<0>();  // no copy may still be writing shared memory when the CTA exits
#pragma unroll
  for (int off = 1; off < 4; off <<= 1) {
    l_a += __shfl_xor_sync(0xffffffffu, l_a, off);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, off);
  }
  store_rows();
#else
  __trap();  // never launched: the host checks that the sm_90a code was loaded (WgmmaAttentionUsable)
#endif
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

float* LsePartial(const AttnParams& p) {
  return p.workspace == nullptr ? nullptr
                                : p.workspace + static_cast<size_t>(p.num_splits) * p.q_tokens * p.heads * p.head_dim;
}

template <typename T>
Status LaunchMerge(const AttnParams& p, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(p.q_tokens) * p.heads;
  MergeSplitsKernel<T><<<static_cast<unsigned>(rows), p.head_dim, 0, stream>>>(
      p.workspace, LsePartial(p), p.num_splits, rows, p.head_dim, static_cast<T*>(p.out));
  return CudaStatus(cudaGetLastError(), "MergeSplitsKernel");
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
  AttentionKernel<T, D, kWarps, kMT><<<grid, kWarps * 32, kSmem, stream>>>(p, split_keys, p.workspace, LsePartial(p));
  return CudaStatus(cudaGetLastError(), "AttentionKernel");
}

template <typename T, int D>
Status LaunchWgmma(const AttnParams& p, int split_keys, cudaStream_t stream) {
  constexpr int kSmem = WgSmemBytes<D>();
  static bool configured = false;
  if (!configured) {
    CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(WgmmaAttentionKernel<T, D>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
    configured = true;
  }
  dim3 grid((p.max_rows + kWgRows - 1) / kWgRows, p.kv_heads * p.num_splits, p.num_seqs);
  WgmmaAttentionKernel<T, D><<<grid, 128 * kWgGroups, kSmem, stream>>>(p, split_keys, p.workspace, LsePartial(p));
  return CudaStatus(cudaGetLastError(), "WgmmaAttentionKernel");
}

template <typename T>
Status LaunchTyped(const AttnParams& p, int split_keys, bool wgmma, bool wide, cudaStream_t stream) {
  if (wgmma) return p.head_dim == 128 ? LaunchWgmma<T, 128>(p, split_keys, stream) : LaunchWgmma<T, 64>(p, split_keys, stream);
  if (p.head_dim == 128) return wide ? Launch<T, 128, 2>(p, split_keys, stream) : Launch<T, 128, 1>(p, split_keys, stream);
  return wide ? Launch<T, 64, 2>(p, split_keys, stream) : Launch<T, 64, 1>(p, split_keys, stream);
}

std::atomic<int> g_kernel{-1};  // AttnKernel; -1 until read from BLOCKKV_ATTN_KERNEL

AttnKernel KernelSetting() {
  int k = g_kernel.load(std::memory_order_relaxed);
  if (k < 0) {
    const char* env = std::getenv("BLOCKKV_ATTN_KERNEL");
    const std::string v = env == nullptr ? "" : env;
    k = static_cast<int>(v == "mma" ? AttnKernel::kMmaSync : v == "wgmma" ? AttnKernel::kWgmma : AttnKernel::kAuto);
    int expected = -1;
    g_kernel.compare_exchange_strong(expected, k);
    k = g_kernel.load(std::memory_order_relaxed);
  }
  return static_cast<AttnKernel>(k);
}

// Whether this call runs on the wgmma kernel: forced, or (auto) usable, more than 16 rows per KV head
// (decoding's 1 x group rows would be mostly padding in a 64-row warpgroup tile; the mma.sync kernel
// skips its idle warps), and not a batch of short sequences: for passages of 100-200 tokens encoded
// together the mma.sync kernel measured 0.441 ms against 0.508 per layer call (blockkv_attn_bench
// encode32K, H200), its smaller tiles padding less of each sequence.
bool UseWgmma(int max_rows, int num_seqs, int max_keys) {
  switch (KernelSetting()) {
    case AttnKernel::kMmaSync: return false;
    case AttnKernel::kWgmma: return WgmmaAttentionUsable();
    case AttnKernel::kAuto: break;
  }
  const bool short_batch = num_seqs > 1 && max_keys <= 256;
  return max_rows > 16 && !short_batch && WgmmaAttentionUsable();
}

int BlockRows(int max_rows, int num_seqs, int max_keys) {
  return UseWgmma(max_rows, num_seqs, max_keys) ? kWgRows : max_rows > 64 ? 128 : 64;
}

__global__ void AdvanceDecodeKernel(int32_t* token, const int32_t* next, int32_t* pos, AttnSeq* seq) {
  *token = *next;
  *pos += 1;
  seq->past += 1;
}

}  // namespace

void SetAttentionKernel(AttnKernel kernel) { g_kernel.store(static_cast<int>(kernel)); }
AttnKernel GetAttentionKernel() { return KernelSetting(); }

bool WgmmaAttentionUsable() {
  static const bool usable = [] {
    int device = 0, major = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return false;
    if (major != 9) return false;
    // The kernel's code for this device must be the sm_90a build, not a JIT of the portable PTX (whose
    // body is a trap).
    cudaFuncAttributes attr{};
    if (cudaFuncGetAttributes(&attr, WgmmaAttentionKernel<__nv_bfloat16, 128>) != cudaSuccess) return false;
    return attr.binaryVersion >= 90;
  }();
  return usable;
}

int AttentionSplits(int max_rows, int max_keys, int kv_heads, int num_seqs, int sm_count) {
  const int block_m = BlockRows(max_rows, num_seqs, max_keys);
  const int64_t ctas = static_cast<int64_t>((max_rows + block_m - 1) / block_m) * kv_heads * num_seqs;
  if (ctas >= sm_count || max_keys <= 512) return 1;
  // Fill exactly one wave: the mma.sync variants (4 warps, <= 255 registers a thread, <= 104 KiB of shared
  // memory) fit two per multiprocessor, the wgmma one (8 warps, 5-stage ring) one. A partial extra wave
  // would cost as much as a full one.
  const int64_t slots = static_cast<int64_t>(sm_count) * (UseWgmma(max_rows, num_seqs, max_keys) ? 1 : 2);
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
  if (KernelSetting() == AttnKernel::kWgmma && !WgmmaAttentionUsable()) {
    return Status::NotSupported("attention: the wgmma kernel needs an sm_90 device and the sm_90a build");
  }
  if (p.num_splits <= 0) p.num_splits = AttentionSplits(p.max_rows, p.max_keys, p.kv_heads, p.num_seqs, sm_count);
  int split_keys = INT_MAX / 2;
  if (p.num_splits > 1) {
    if (p.workspace == nullptr) return Status::InvalidArgument("attention: split-KV needs a workspace");
    split_keys = (p.max_keys + p.num_splits - 1) / p.num_splits;
    split_keys = (split_keys + kBlockN - 1) / kBlockN * kBlockN;  // kWgKeys == kBlockN
  }
  const bool wgmma = UseWgmma(p.max_rows, p.num_seqs, p.max_keys);
  const bool wide = !wgmma && BlockRows(p.max_rows, p.num_seqs, p.max_keys) == 128;
  const bool bf16 = precision == Precision::kBF16;
  RETURN_IF_ERROR(bf16 ? LaunchTyped<__nv_bfloat16>(p, split_keys, wgmma, wide, stream)
                       : LaunchTyped<__half>(p, split_keys, wgmma, wide, stream));
  if (p.num_splits > 1) RETURN_IF_ERROR(bf16 ? LaunchMerge<__nv_bfloat16>(p, stream) : LaunchMerge<__half>(p, stream));
  return Status::OK();
}

Status LaunchAdvanceDecode(int32_t* token, const int32_t* next, int32_t* pos, AttnSeq* seq, cudaStream_t stream) {
  if (token == nullptr || next == nullptr || pos == nullptr || seq == nullptr) {
    return Status::InvalidArgument("advance_decode: null pointer");
  }
  AdvanceDecodeKernel<<<1, 1, 0, stream>>>(token, next, pos, seq);
  return CudaStatus(cudaGetLastError(), "AdvanceDecodeKernel");
}

}  // namespace blockkv::cuda
