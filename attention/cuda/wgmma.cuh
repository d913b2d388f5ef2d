// Hopper (sm_90a) warpgroup matrix-multiply wrappers for the attention kernel (included by .cu files only,
// and used only in code compiled for sm_90a): shared-memory matrix descriptors for the 128-byte swizzled
// layout, the wgmma fences, and wgmma.mma_async with A from registers, B from shared memory and fp32
// accumulators, for N = 64 and 128 (PTX ISA: "Asynchronous Warpgroup Level Matrix Multiply-Accumulate").
//
// Layout used for every shared-memory operand: rows of 64 16-bit elements (128 bytes), 16-byte chunk c of
// row r stored at chunk c ^ (r % 8) (the hardware's 128B swizzle, which needs the 8-row atom 1024-byte
// aligned). A 128-element row is two such panels, one after the other.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace blockkv::cuda::dev {

// Byte offset of element chunk `chunk` (8 elements) of row `row` in a swizzled tile of `rows` rows.
__host__ __device__ constexpr uint32_t SwizzledChunk(int rows, int row, int chunk) {
  return static_cast<uint32_t>((chunk / 8) * rows * 128 + row * 128 + (((chunk % 8) ^ (row % 8)) << 4));
}

// Matrix descriptor: start address, leading- and stride-dimension byte offsets (all in 16-byte units),
// 128B swizzle (mode 1 in bits 62-63). K-major operands: `sbo` = 1024 (the next 8 rows), `lbo` unused.
// MN-major operands: `sbo` = 1024 (the next 8 rows along K), `lbo` = the next 64-element panel along MN.
__device__ __forceinline__ uint64_t SmemDesc(uint32_t smem_addr, uint32_t lbo, uint32_t sbo) {
  return static_cast<uint64_t>((smem_addr >> 4) & 0x3FFF) | (static_cast<uint64_t>((lbo >> 4) & 0x3FFF) << 16) |
         (static_cast<uint64_t>((sbo >> 4) & 0x3FFF) << 32) | (1ull << 62);
}

__device__ __forceinline__ void WgmmaFence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void WgmmaCommit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void WgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Makes this thread's generic-proxy shared-memory writes (cp.async, st.shared) visible to wgmma's reads.
__device__ __forceinline__ void FenceProxyAsync() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Pins the values of wgmma operand registers at this point of the program: the compiler may not move an
// ordinary write of them below, or a read above, this statement (volatile asm keeps its order relative to
// the wgmma fences, waits and MMAs). Needed on both sides: before WgmmaFence for registers the thread
// wrote (accumulators rescaled or zeroed, A fragments computed), after WgmmaWait for results it reads.
// Without it the compiler was seen to sink a rescale of O below the fence (wrong results, head_dim 64).
template <int N>
__device__ __forceinline__ void FenceOperands(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N, int M>
__device__ __forceinline__ void FenceOperands(uint32_t (&r)[N][M]) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
#pragma unroll
    for (int j = 0; j < M; ++j) asm volatile("" : "+r"(r[i][j])::"memory");
  }
}

// mbarriers in shared memory (PTX "mbarrier"): a phase completes when `count` arrivals have happened;
// waiters name the phase by its parity.
__device__ __forceinline__ void MbarInit(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// Makes initialized mbarriers visible to the other threads' (and the async proxy's) operations.
__device__ __forceinline__ void MbarInitFence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// One arrival, when every cp.async this thread issued before it has completed (noinc: the arrival is one
// of the phase's `count`).
__device__ __forceinline__ void MbarArriveOnCpAsync(uint32_t bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void MbarArrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Blocks until the phase with this parity has completed.
__device__ __forceinline__ void MbarWait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n"
      "}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

// 16 bytes global -> shared; zero-filled when !valid (nothing is read then).
__device__ __forceinline__ void CpAsync16Zfill(uint32_t smem, const void* gmem, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem), "l"(gmem), "r"(valid ? 16 : 0));
}

// d (64 x N, fp32; this thread's N / 2 values in the mma.sync accumulator order, repeated per 8 columns)
// = a (64 x 16, registers in the mma.sync A-fragment order, per warp of 16 rows) * b (16 x N, shared
// memory, descriptor) + (scale_d ? d : 0). kTransB = 0: b is K-major (N rows of K contiguous elements);
// 1: MN-major (K rows of N contiguous elements).
template <typename T, int N>
struct WgmmaRS;

// One specialization per (type, N), spelled out by these macros: inline PTX needs literal operand
// numbers, so the operand lists cannot be generated by templates.
#define BLOCKKV_WGMMA_RS_N64(T, PTX)                                                                                \
  template <>                                                                                                       \
  struct WgmmaRS<T, 64> {                                                                                           \
    template <int kTransB>                                                                                          \
    static __device__ __forceinline__ void Run(float (&d)[32], const uint32_t (&a)[4], uint64_t b, int scale_d) {   \
      asm volatile(                                                                                                 \
          "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                                              \
          "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX "." PTX " {"                                            \
          "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"                                   \
          "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"                          \
          "}, {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"                                                        \
          :                                                                                                         \
            "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),         \
            "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),   \
            "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
            "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])  \
          : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(scale_d), "n"(kTransB));                        \
    }                                                                                                               \
  };

#define BLOCKKV_WGMMA_RS_N128(T, PTX)                                                                               \
  template <>                                                                                                       \
  struct WgmmaRS<T, 128> {                                                                                          \
    template <int kTransB>                                                                                          \
    static __device__ __forceinline__ void Run(float (&d)[64], const uint32_t (&a)[4], uint64_t b, int scale_d) {   \
      asm volatile(                                                                                                 \
          "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                                                              \
          "wgmma.mma_async.sync.aligned.m64n128k16.f32." PTX "." PTX " {"                                           \
          "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"                                   \
          "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"                         \
          "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"                         \
          "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"                          \
          "}, {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"                                                        \
          :                                                                                                         \
            "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),         \
            "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),   \
            "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
            "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
            "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
            "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
            "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
            "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])  \
          : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(scale_d), "n"(kTransB));                        \
    }                                                                                                               \
  };

BLOCKKV_WGMMA_RS_N64(__nv_bfloat16, "bf16")
BLOCKKV_WGMMA_RS_N64(__half, "f16")
BLOCKKV_WGMMA_RS_N128(__nv_bfloat16, "bf16")
BLOCKKV_WGMMA_RS_N128(__half, "f16")
#undef BLOCKKV_WGMMA_RS_N64
#undef BLOCKKV_WGMMA_RS_N128

}  // namespace blockkv::cuda::dev
