#include "attention/cuda/sampling.cuh"

#include <climits>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

#include "attention/cuda/cuda_status.h"
#include "attention/cuda/elementwise.cuh"
#include "attention/xoshiro.h"

namespace blockkv::cuda {
namespace {

constexpr int kSelectThreads = 1024;

// keys = logits with -0 as +0 (the host compares them equal; the radix sort would not), vals = ids.
__global__ void SamplePrepKernel(const float* __restrict__ logits, int vocab, float* __restrict__ keys,
                                 int32_t* __restrict__ vals) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < vocab) {
    const float v = logits[i];
    keys[i] = v == 0.0f ? 0.0f : v;
    vals[i] = i;
  }
}

struct MinOp {
  __device__ int operator()(int a, int b) const { return a < b ? a : b; }
};

// One CTA over the sorted candidates keys[0 .. keep) (most likely first) and their ids. Each thread owns a
// contiguous chunk; weights are recomputed in each pass rather than stored.
__global__ void __launch_bounds__(kSelectThreads)
    SampleSelectKernel(const float* __restrict__ keys, const int32_t* __restrict__ vals, int keep, double t,
                       float top_p, uint64_t* __restrict__ rng, int32_t* __restrict__ out) {
  using Scan = cub::BlockScan<double, kSelectThreads>;
  using Reduce = cub::BlockReduce<int, kSelectThreads>;
  __shared__ union {
    typename Scan::TempStorage scan;
    typename Reduce::TempStorage reduce;
  } tmp;
  __shared__ double s_u;
  __shared__ int s_first;
  const int chunk = (keep + kSelectThreads - 1) / kSelectThreads;
  const int begin = min(keep, static_cast<int>(threadIdx.x) * chunk), end = min(keep, begin + chunk);
  const double m = static_cast<double>(keys[0]) / t;
  auto weight = [&](int i) { return exp(static_cast<double>(keys[i]) / t - m); };
  if (threadIdx.x == 0) s_u = XoshiroUniform(rng);  // Sampler::Uniform's draw

  double local = 0;
  for (int i = begin; i < end; ++i) local += weight(i);
  double prefix, total;
  Scan(tmp.scan).ExclusiveSum(local, prefix, total);
  __syncthreads();
  int cut = keep;
  if (top_p < 1.0f) {
    // The first i whose running share sum_{j <= i} w_j / total reaches top_p (the host adds the shares).
    double share = 0;
    for (int i = begin; i < end; ++i) share += weight(i) / total;
    double share_prefix, share_total;
    Scan(tmp.scan).ExclusiveSum(share, share_prefix, share_total);
    __syncthreads();
    int first = INT_MAX;
    double cum = share_prefix;
    for (int i = begin; i < end; ++i) {
      cum += weight(i) / total;
      if (cum >= top_p) {
        first = i;
        break;
      }
    }
    first = Reduce(tmp.reduce).Reduce(first, MinOp());
    if (threadIdx.x == 0) s_first = first;
    __syncthreads();
    if (s_first != INT_MAX) cut = s_first + 1;
    local = 0;
    for (int i = begin; i < min(end, cut); ++i) local += weight(i);
    Scan(tmp.scan).ExclusiveSum(local, prefix, total);
    __syncthreads();
  }
  const double u = s_u * total;
  int first = INT_MAX;
  double cum = prefix;
  for (int i = begin; i < min(end, cut); ++i) {
    cum += weight(i);
    if (u < cum) {
      first = i;
      break;
    }
  }
  first = Reduce(tmp.reduce).Reduce(first, MinOp());
  if (threadIdx.x == 0) *out = vals[first == INT_MAX ? cut - 1 : first];
}

size_t Align(size_t x) { return (x + 255) & ~size_t{255}; }

}  // namespace

StatusOr<size_t> SampleScratchBytes(int vocab) {
  if (vocab <= 0) return Status::InvalidArgument("sample: bad vocabulary size");
  size_t sort_bytes = 0;
  CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairsDescending(
      nullptr, sort_bytes, static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), vocab));
  return 4 * Align(static_cast<size_t>(vocab) * 4) + Align(sort_bytes);
}

Status LaunchSample(const float* logits, int vocab, const SampleRule& options, uint64_t* rng_state, void* scratch,
                    size_t scratch_bytes, int32_t* out, cudaStream_t stream) {
  if (vocab <= 0 || logits == nullptr || out == nullptr) return Status::InvalidArgument("sample: bad arguments");
  if (options.temperature <= 0.0f || options.top_k == 1) return LaunchArgMax(logits, vocab, out, stream);
  ASSIGN_OR_RETURN(const size_t need, SampleScratchBytes(vocab));
  if (rng_state == nullptr || scratch == nullptr || scratch_bytes < need) {
    return Status::InvalidArgument("sample: needs the generator state and " + std::to_string(need) +
                                   " bytes of scratch");
  }
  const size_t n = Align(static_cast<size_t>(vocab) * 4);
  char* base = static_cast<char*>(scratch);
  float* keys_in = reinterpret_cast<float*>(base);
  float* keys_out = reinterpret_cast<float*>(base + n);
  int32_t* vals_in = reinterpret_cast<int32_t*>(base + 2 * n);
  int32_t* vals_out = reinterpret_cast<int32_t*>(base + 3 * n);
  void* sort_tmp = base + 4 * n;
  size_t sort_bytes = scratch_bytes - 4 * n;
  SamplePrepKernel<<<(vocab + 255) / 256, 256, 0, stream>>>(logits, vocab, keys_in, vals_in);
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairsDescending(sort_tmp, sort_bytes, keys_in, keys_out, vals_in,
                                                                 vals_out, vocab, 0, 32, stream));
  const int keep = options.top_k > 0 && options.top_k < vocab ? options.top_k : vocab;
  SampleSelectKernel<<<1, kSelectThreads, 0, stream>>>(keys_out, vals_out, keep, static_cast<double>(options.temperature),
                                                       options.top_p, rng_state, out);
  return CudaStatus(cudaGetLastError(), "SampleSelectKernel");
}

}  // namespace blockkv::cuda
