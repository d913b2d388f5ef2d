// Linear layers through cuBLASLt: y (n, out) = x (n, in) · W^T, W as nn.Linear stores it (out, in),
// row-major; operands in the runtime's precision, fp32 accumulation. The output is either T, or fp32 with
// the residual add fused (y += x W^T, beta = 1), which is how the residual stream stays in fp32.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "attention/cuda/precision.h"
#include "db/status.h"

namespace blockkv::cuda {

class Gemm {
 public:
  // A handle and a workspace of `workspace_bytes` device memory. Errors: Internal, ResourceExhausted.
  static StatusOr<std::unique_ptr<Gemm>> Create(size_t workspace_bytes = 64u << 20);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  enum class Output {
    kStorage,         // y: (n, out) T, overwritten
    kF32,             // y: (n, out) fp32, overwritten
    kF32Accumulate,   // y: (n, out) fp32, y += x W^T
  };

  // x: (n, in) T; w: (out, in) T; y as `output` says. Pointers 16-byte aligned; in and out multiples of 8.
  // Matmul plans (layouts and an algorithm) are cached per shape: the heuristic's first choice, or for
  // products of at most kTuneMaxRows rows the fastest of its candidates, timed on the first call (which
  // synchronizes the device once). Capturable in a CUDA graph once a shape has run outside capture.
  Status Linear(const void* x, const void* w, void* y, int64_t n, int in, int out, Output output,
                Precision precision, cudaStream_t stream);

 private:
  struct Plan;
  // Products of at most this many rows have their algorithm chosen by timing cuBLASLt's candidates.
  static constexpr int64_t kTuneMaxRows = 256;
  Gemm() = default;
  StatusOr<Plan*> GetPlan(int64_t n, int in, int out, Output output, Precision precision);
  StatusOr<cublasLtMatmulAlgo_t> Tune(const Plan& plan, const cublasLtMatmulHeuristicResult_t* candidates, int count,
                                      int64_t n, int in, int out, Output output, Precision precision);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<std::tuple<int64_t, int, int, int, int>, std::unique_ptr<Plan>> plans_;
};

}  // namespace blockkv::cuda
