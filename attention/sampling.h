// Choosing the next token from logits: greedy, or temperature / top-k / top-p sampling from a
// seeded generator whose sequence is the same on every platform (xoshiro256**, seeded by
// splitmix64).
//
// Ownership and threads: a Sampler holds its generator's state and belongs to one thread.
#pragma once

#include <array>
#include <cstdint>
#include <span>

namespace blockkv {

struct SamplingOptions {
  // Softmax temperature. 0 picks the most likely token (greedy). Default: 0.
  float temperature = 0.0f;
  // Keep only the k most likely tokens before sampling; 0 keeps all. top_k = 1 is greedy. Default:
  // 0.
  int top_k = 0;
  // Keep the smallest set of most likely tokens whose probability reaches top_p (nucleus).
  // Default: 1.
  float top_p = 1.0f;
  // Seed of the generator; equal seeds give equal samples. Default: 0.
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);

  // The next token for `logits` (one per vocabulary entry). Greedy ties go to the lowest id.
  // Advances the generator only when sampling.
  int32_t Next(std::span<const float> logits);

  // A uniform double in [0, 1) from the generator (exposed for tests).
  double Uniform();

  // The generator's state (xoshiro256**), for a device sampler that continues the same sequence.
  std::array<uint64_t, 4> state() const { return {s_[0], s_[1], s_[2], s_[3]}; }

 private:
  SamplingOptions options_;
  uint64_t s_[4];
};

// Index of the largest value; the lowest index among equals (torch.argmax's choice).
int32_t ArgMax(std::span<const float> logits);

}  // namespace blockkv
