// ModelBackend: what the Engine needs from a model runtime, so that one engine serves the CPU runtime
// (CpuBackend, below) and the CUDA runtime (cuda::CudaBackend, attention/cuda/cuda_backend.h) alike.
//
// A backend keeps the KV cache of its last prefill for Decode, so each Engine uses its own backend
// object; the runtime underneath may be shared (the CPU Runtime is const and thread-safe).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "attention/runtime.h"
#include "db/block_key.h"

namespace blockkv {

class ModelBackend {
 public:
  virtual ~ModelBackend() = default;

  virtual const ModelConfig& config() const = 0;
  virtual const ModelFingerprint& fingerprint() const = 0;
  // "cpu", or "cuda (<device name>)".
  virtual std::string name() const = 0;

  // Runtime::EncodeBlock: each layer's pre-RoPE keys and values, fp32 on the host.
  virtual StatusOr<BlockKV> EncodeBlock(std::span<const int32_t> tokens) = 0;
  // Runtime::Prefill / PrefillFull: the logits (PrefillOptions::all_logits); the cache is kept for Decode.
  virtual StatusOr<std::vector<float>> Prefill(std::span<const BlockKV* const> blocks,
                                               std::span<const int32_t> final_tokens,
                                               const PrefillOptions& options) = 0;
  virtual StatusOr<std::vector<float>> PrefillFull(std::span<const int32_t> tokens,
                                                   const PrefillOptions& options) = 0;
  // Runtime::Decode over the cache of the last prefill. InvalidArgument without one.
  virtual StatusOr<std::vector<int32_t>> Decode(std::span<const float> last_logits,
                                                const DecodeOptions& options) = 0;
};

// The CPU runtime as a backend. `runtime` must outlive it.
class CpuBackend final : public ModelBackend {
 public:
  explicit CpuBackend(const Runtime* runtime) : runtime_(runtime) {}

  const ModelConfig& config() const override { return runtime_->config(); }
  const ModelFingerprint& fingerprint() const override { return runtime_->fingerprint(); }
  std::string name() const override { return "cpu"; }
  StatusOr<BlockKV> EncodeBlock(std::span<const int32_t> tokens) override;
  StatusOr<std::vector<float>> Prefill(std::span<const BlockKV* const> blocks,
                                       std::span<const int32_t> final_tokens,
                                       const PrefillOptions& options) override;
  StatusOr<std::vector<float>> PrefillFull(std::span<const int32_t> tokens,
                                           const PrefillOptions& options) override;
  StatusOr<std::vector<int32_t>> Decode(std::span<const float> last_logits,
                                        const DecodeOptions& options) override;

 private:
  const Runtime* runtime_;
  KVCache cache_;
  bool have_cache_ = false;
};

}  // namespace blockkv
