// The CUDA runtime as an Engine backend (attention/model_backend.h): `blockkv run --device cuda`.
//
// Stored blocks stream in layer by layer (PrefillStreamed: read from the store as the runtime's storage type
// into pinned memory by reader threads, copied on a second stream, keys rotated to their offsets just
// before each layer's attention); Prefill over host BlockKV (fp32) uploads each block's layers, rounding
// them to the runtime's precision, and gives the same result. The final block is prefilled on the device. The cache of the last prefill stays on the device for Decode (a streamed prefill then takes over its memory: no per-request allocation); it is
// allocated with room for kDecodeReserve more tokens (it grows, moving once, if decoding goes past that).
#pragma once

#include <memory>
#include <string>

#include "attention/cuda/cuda_runtime.h"
#include "attention/model_backend.h"

namespace blockkv::cuda {

class CudaBackend final : public ModelBackend {
 public:
  // Loads `model_dir` (Model::Load: config, fingerprint, weights) and uploads it. Errors: Model::Load's,
  // NotSupported for shapes the CUDA runtime refuses (head_dim other than 64 or 128), Internal errors
  // from CUDA when there is no usable device (check CudaRuntime::DeviceAvailable first).
  static StatusOr<std::unique_ptr<CudaBackend>> Open(const std::string& model_dir,
                                                     const CudaRuntimeOptions& options = {});

  // A backend over a runtime that the caller keeps (e.g. one made by CudaRuntime::CreateRandom, whose
  // blocks are then addressed by `fingerprint`). `runtime` must outlive the backend.
  static std::unique_ptr<CudaBackend> Borrow(CudaRuntime* runtime, const ModelFingerprint& fingerprint);

  const ModelConfig& config() const override { return rt_->config(); }
  const ModelFingerprint& fingerprint() const override { return fingerprint_; }
  std::string name() const override { return "cuda (" + rt_->device_name() + ")"; }
  StatusOr<BlockKV> EncodeBlock(std::span<const int32_t> tokens) override;
  StatusOr<std::vector<float>> Prefill(std::span<const BlockKV* const> blocks, std::span<const int32_t> final_tokens,
                                       const PrefillOptions& options) override;
  StatusOr<std::vector<float>> PrefillFull(std::span<const int32_t> tokens, const PrefillOptions& options) override;
  // Blocks stream in through CudaRuntime::PrefillSegments, read as the runtime's storage type; resident
  // blocks (the GPU tier) are re-encoded in place and pinned host blocks copied straight to the device.
  bool streams() const override { return true; }
  StatusOr<std::vector<float>> PrefillStreamed(BlockLayerSource& source, std::span<const BlockPlacement> placement,
                                               std::span<const int32_t> final_tokens, const PrefillOptions& options,
                                               StreamTiming* timing) override;
  DType stream_dtype() const override;
  // The GPU tier: device blocks of the runtime's storage type (CudaRuntime::UploadBlockRaw).
  bool device_tier() const override { return true; }
  StatusOr<std::unique_ptr<ResidentBlock>> MakeResident(uint32_t tokens, const LayerFill& fill) override;
  // Pinned memory (cudaHostAlloc), for the host tier's arena.
  void* AllocateHostMemory(uint64_t bytes) override;
  void FreeHostMemory(void* p) override;
  StatusOr<std::vector<int32_t>> Decode(std::span<const float> last_logits, const DecodeOptions& options) override;

  CudaRuntime& runtime() { return *rt_; }
  static constexpr int64_t kDecodeReserve = 256;

 private:
  CudaBackend() = default;
  std::unique_ptr<CudaRuntime> owned_;
  CudaRuntime* rt_ = nullptr;
  ModelFingerprint fingerprint_;
  std::unique_ptr<DeviceKVCache> cache_;
};

}  // namespace blockkv::cuda
