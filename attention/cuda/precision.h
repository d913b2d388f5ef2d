// Storage precision of the CUDA backend's weights, activations and KV cache (arithmetic is fp32).
//
// Threads: constants and pure functions.
#pragma once

namespace blockkv::cuda {

enum class Precision { kBF16, kFP16 };

inline const char* PrecisionName(Precision p) { return p == Precision::kBF16 ? "bf16" : "fp16"; }

}  // namespace blockkv::cuda
