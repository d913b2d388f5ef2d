// ModelBackend: what the Engine needs from a model runtime, so that one engine serves the CPU runtime
// (CpuBackend, below) and the CUDA runtime (cuda::CudaBackend, attention/cuda/cuda_backend.h) alike.
//
// A backend keeps the KV cache of its last prefill for Decode, so each Engine uses its own backend
// object; the runtime underneath may be shared (the CPU Runtime is const and thread-safe).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "attention/runtime.h"
#include "db/block_key.h"
#include "db/dtype.h"

namespace blockkv {

// The blocks of a prompt that must be read (from the store, or converted) as a source of layers, for
// ModelBackend::PrefillStreamed.
class BlockLayerSource {
 public:
  virtual ~BlockLayerSource() = default;
  // Tokens of all the blocks it reads together.
  virtual int64_t tokens() const = 0;
  // Writes layer `layer` of every block it reads, in prompt order and token-major, as `dtype` values: the
  // pre-RoPE keys into k_out and the values into v_out, tokens() x kv_heads x head_dim each. Called from
  // several threads at once, for different layers. Errors: the store's (NotFound when a block has been
  // evicted, Corruption naming the block).
  virtual Status ReadLayer(uint32_t layer, DType dtype, void* k_out, void* v_out) = 0;
};

// A block kept in the backend's device memory across requests (the GPU tier): its pre-RoPE keys and values
// in the backend's stream_dtype(). Owned by whoever holds it; freed on destruction.
class ResidentBlock {
 public:
  virtual ~ResidentBlock() = default;
  virtual uint32_t tokens() const = 0;
  virtual uint64_t bytes() const = 0;  // device memory held
};

// Where one block of a streamed prefill comes from, in prompt order: already on the device (`resident`), in
// pinned host memory in stream_dtype() (`host`: layer l's keys at host + 2 * l * tensor_bytes, its values
// tensor_bytes after them; copied straight from there), or neither: read through the BlockLayerSource.
struct BlockPlacement {
  uint32_t tokens = 0;
  const ResidentBlock* resident = nullptr;
  const uint8_t* host = nullptr;
  uint64_t tensor_bytes = 0;
};

// What a streamed prefill measured, in milliseconds.
struct StreamTiming {
  double read_ms = 0;      // in BlockLayerSource::ReadLayer, summed over the reader threads
  double wait_ms = 0;      // the forward pass waiting for a layer that was not read yet
  double resident_ms = 0;  // device time re-encoding the resident blocks into the prompt's cache
  uint64_t host_bytes = 0;  // copied straight from pinned host memory
};

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
  // Prefill whose blocks are read from `source` one layer at a time while the final block's forward pass
  // runs (DESIGN §5: reading, copying and computing overlap), for backends where streams() is true; the
  // result equals Prefill over the same blocks. Others return NotSupported (the Engine then loads every
  // block first and calls Prefill).
  //
  // `placement` (empty: every block is read) gives each block's place in prompt order; the source then reads
  // only the blocks with neither a resident copy nor pinned host memory.
  virtual bool streams() const { return false; }
  virtual StatusOr<std::vector<float>> PrefillStreamed(BlockLayerSource& source, std::span<const BlockPlacement> placement,
                                                       std::span<const int32_t> final_tokens,
                                                       const PrefillOptions& options, StreamTiming* timing) {
    return Status::NotSupported(name() + " has no streaming prefill");
  }
  // The dtype of streamed layers (ReadLayer's), of resident blocks and of host memory copied directly.
  virtual DType stream_dtype() const { return DType::kF32; }

  // The GPU tier: backends where device_tier() is true keep blocks resident. MakeResident builds one of
  // `tokens` tokens whose layers `fill` writes (stream_dtype(), token-major, keys and values). Errors:
  // ResourceExhausted when the device is out of memory; fill's.
  virtual bool device_tier() const { return false; }
  using LayerFill = std::function<Status(uint32_t layer, void* k, void* v)>;
  virtual StatusOr<std::unique_ptr<ResidentBlock>> MakeResident(uint32_t tokens, const LayerFill& fill) {
    return Status::NotSupported(name() + " keeps no blocks on a device");
  }

  // Host memory for the host tier that the backend copies from directly (pinned), or nullptr where that does
  // not help (the CPU backend; or the allocation failed). Freed with FreeHostMemory.
  virtual void* AllocateHostMemory(uint64_t bytes) { return nullptr; }
  virtual void FreeHostMemory(void* p) {}
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
