// The next token on the device: the host Sampler's rule (attention/sampling.h) run on device logits, with
// its xoshiro256** state on the device, so that a decode step with sampling needs no host round trip and
// can be captured in a CUDA graph.
//
// The rule, as the host's: greedy (argmax, lowest id among equals) when temperature <= 0 or top_k == 1,
// without drawing; otherwise order the tokens most likely first (equal logits by lower id), keep the
// top_k, weight them by exp(logit / T - max / T) in double, keep the smallest prefix whose share reaches
// top_p, draw u = Uniform() * (the prefix's weight) and take the first token whose running weight exceeds
// u. The order comes from a stable radix sort (CUB), the sums from a block-wide scan: the same values as
// the host's sequential sums up to double rounding (~1e-16 relative), so the two pick the same token
// unless u falls within that distance of a boundary.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "db/status.h"

namespace blockkv::cuda {

// Bytes of device scratch that LaunchSample needs for a vocabulary of `vocab` (sort keys, values and
// CUB's temporary storage).
StatusOr<size_t> SampleScratchBytes(int vocab);

// The rule's parameters, as SamplingOptions' (attention/sampling.h, which the C++17 .cu files cannot
// include); the seed lives in the generator's state instead.
struct SampleRule {
  float temperature = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
};

// out[0] = the next token for logits[0 .. vocab) (fp32, device) under `rule`; the generator's state is
// `rng_state`, 4 device uint64 as Sampler::state(), advanced by one draw when sampling. scratch: device
// memory of SampleScratchBytes(vocab) bytes. A greedy rule launches the argmax kernel only (no scratch or
// state needed).
Status LaunchSample(const float* logits, int vocab, const SampleRule& rule, uint64_t* rng_state, void* scratch,
                    size_t scratch_bytes, int32_t* out, cudaStream_t stream);

}  // namespace blockkv::cuda
