// A from-scratch reference forward pass, for tests: naive loops in double precision, no BLAS, an
// explicit attention mask and explicit positions. Written independently of attention/cpu/ (it
// shares only the weights and ComputeInvFreq, which rope_test checks on its own). Slow: O(T^2) per
// layer with no blocking; meant for prompts of a few hundred tokens on tiny models.
//
// Threads: pure functions, safe from any thread. Errors: InvalidArgument for inputs of the wrong shape.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "attention/model.h"
#include "db/status.h"

namespace blockkv {

// Row-major (T, T): mask[i * T + j] != 0 iff token i may attend to token j.
using AttentionMask = std::vector<uint8_t>;

// Block-Attention's mask (DESIGN §2) for blocks of the given sizes, the last being the final block:
// token i of a non-final block attends to j iff j is in the same block and j <= i; tokens of the
// final block attend to every earlier token and causally within the final block.
AttentionMask BlockAttentionMask(std::span<const int64_t> block_sizes);

// Ordinary causal mask: i attends to j iff j <= i.
AttentionMask CausalMask(int64_t tokens);

// Logits (T, vocab) for every position. positions[i] is token i's rotary position. Every row of the
// mask must allow at least one token. If `residual_rms` is set it receives the RMS of the residual
// stream over all tokens after the embedding and after each layer (num_layers + 1 values). Errors:
// InvalidArgument for mismatched sizes or bad token ids.
StatusOr<std::vector<float>> ReferenceForward(const Model& model, std::span<const int32_t> tokens,
                                              std::span<const int64_t> positions,
                                              const AttentionMask& mask,
                                              std::vector<double>* residual_rms = nullptr);

}  // namespace blockkv
