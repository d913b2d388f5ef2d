// The one adapter from CUDA runtime and cuBLAS status codes to blockkv::Status (STYLE.md: errors are values;
// a launcher never exits).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "db/status.h"

namespace blockkv::cuda {

// OK for cudaSuccess; otherwise Internal (ResourceExhausted for cudaErrorMemoryAllocation) naming `what`
// and CUDA's own error string.
Status CudaStatus(cudaError_t e, const char* what);

// OK for CUBLAS_STATUS_SUCCESS; otherwise Internal naming `what` and the status name.
Status CublasStatus(cublasStatus_t s, const char* what);

}  // namespace blockkv::cuda

#define CUDA_RETURN_IF_ERROR(expr) RETURN_IF_ERROR(::blockkv::cuda::CudaStatus((expr), #expr))
#define CUBLAS_RETURN_IF_ERROR(expr) RETURN_IF_ERROR(::blockkv::cuda::CublasStatus((expr), #expr))
