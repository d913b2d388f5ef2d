// The CUDA backend of the Block-Attention runtime: the CPU Runtime's operations (attention/runtime.h) with
// weights, activations and the KV cache in device memory in bf16 (or fp16), fp32 accumulation everywhere.
//
// Layout: the KV cache is token-major per layer, (capacity, kv_heads, head_dim), keys rotated to their
// positions, like the store's tensors (DESIGN §4), so a loaded block's layer lands as one contiguous slab.
// Blocks are exchanged as BlockKV (host, fp32, pre-RoPE: the CPU runtime's and the store's format) or kept
// on the device as DeviceBlock (pre-RoPE, T) so that a prompt over them needs no host copy at all.
//
// This header has no CUDA types: tools and tests compile it with the host compiler.
//
// Thread safety: a CudaRuntime and the caches and blocks it made are used by one thread at a time (the
// runtime owns one stream and one set of scratch buffers). Every call returns after its device work is
// complete (the results are on the host or in the cache).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "attention/cuda/precision.h"
#include "attention/kv_cache.h"
#include "attention/model.h"
#include "attention/model_config.h"
#include "attention/runtime.h"
#include "db/status.h"

namespace blockkv::cuda {

struct CudaRuntimeOptions {
  // CUDA device ordinal. Default: 0.
  int device = 0;
  // Storage precision of weights, activations and the KV cache. Default: bf16.
  Precision precision = Precision::kBF16;
  // Replay a captured CUDA graph for each decode step (eager launches otherwise). Default: true.
  bool decode_graphs = true;
  // Replay a captured CUDA graph for an Extend (final block, prefill) of the same shape on the same cache
  // at the same offset as one of the last two: the second such call captures it, later ones replay it.
  // Default: true.
  bool extend_graphs = true;
};

class CudaRuntime;

// A decode-ready KV cache in device memory: `length` tokens at positions 0 .. length-1 out of a
// preallocated `capacity` (grown on demand, which moves it).
class DeviceKVCache {
 public:
  ~DeviceKVCache();
  int64_t length() const;
  int64_t capacity() const;
  struct Impl;

 private:
  friend class CudaRuntime;
  DeviceKVCache();
  std::unique_ptr<Impl> impl_;
};

// One encoded block resident in device memory: per layer pre-RoPE keys and values, T,
// (tokens, kv_heads, head_dim). Blocks encoded together share one allocation, freed with the last of them.
class DeviceBlock {
 public:
  ~DeviceBlock();
  uint32_t tokens() const;
  size_t bytes() const;  // device bytes of its keys and values
  struct Impl;

 private:
  friend class CudaRuntime;
  DeviceBlock();
  std::unique_ptr<Impl> impl_;
};

struct CudaPrefillResult {
  std::vector<float> logits;              // as PrefillOptions::all_logits says
  std::unique_ptr<DeviceKVCache> cache;   // every prompt token; ready for Decode
};

class CudaRuntime {
 public:
  // True when a CUDA device can be used; otherwise false with the reason in *why (no driver, no device).
  static bool DeviceAvailable(std::string* why);

  // Loads the model in `model_dir` (Model::Load) and uploads it. Errors: Model::Load's, NotSupported (a
  // head_dim other than 64 or 128), Internal/ResourceExhausted from CUDA.
  static StatusOr<std::unique_ptr<CudaRuntime>> Open(const std::string& model_dir,
                                                     const CudaRuntimeOptions& options = {});
  // Uploads an already loaded model.
  static StatusOr<std::unique_ptr<CudaRuntime>> Create(const Model& model, const CudaRuntimeOptions& options = {});
  // A model of `config`'s shape with random weights generated on the device (for benchmarks of full-size
  // shapes without a weights file). Deterministic for a seed on a given GPU.
  static StatusOr<std::unique_ptr<CudaRuntime>> CreateRandom(const ModelConfig& config, uint64_t seed,
                                                             const CudaRuntimeOptions& options = {});
  ~CudaRuntime();
  CudaRuntime(const CudaRuntime&) = delete;
  CudaRuntime& operator=(const CudaRuntime&) = delete;

  const ModelConfig& config() const;
  Precision precision() const;
  std::string device_name() const;
  // Which attention kernels this process runs (attention/cuda/attention.cuh, AttnKernel): "wgmma (decode:
  // mma.sync)" on an sm_90 device, "mma.sync" elsewhere or when BLOCKKV_ATTN_KERNEL=mma.
  static std::string AttentionKernels();
  int vocab_size() const { return config().vocab_size; }

  // An empty cache with room for `capacity` tokens.
  StatusOr<std::unique_ptr<DeviceKVCache>> NewCache(int64_t capacity);

  // Runtime::EncodeBlock: each layer's pre-RoPE keys and values of one block (block-local causal attention
  // at positions 0 .. n-1), returned in fp32 on the host. Errors as the CPU runtime's.
  StatusOr<BlockKV> EncodeBlock(std::span<const int32_t> tokens);
  // Encodes several blocks in one batched pass (variable-length, each causal over itself).
  StatusOr<std::vector<BlockKV>> EncodeBlocks(std::span<const std::vector<int32_t>> blocks);
  // The same, keeping the results on the device.
  StatusOr<std::vector<std::unique_ptr<DeviceBlock>>> EncodeBlocksResident(
      std::span<const std::vector<int32_t>> blocks);
  // Copies a host block to the device (rounded to the runtime's precision) and back (exact).
  StatusOr<std::unique_ptr<DeviceBlock>> UploadBlock(const BlockKV& block);
  StatusOr<BlockKV> DownloadBlock(const DeviceBlock& block);

  // Runtime::AppendBlock: rotates the block's keys to positions cache.length .. and appends them and its
  // values (host: one H2D copy per layer; device: device-to-device). Grows the cache if needed.
  Status AppendBlock(DeviceKVCache& cache, const BlockKV& block);
  Status AppendBlock(DeviceKVCache& cache, const DeviceBlock& block);
  // Appends several device blocks in order with one kernel launch for all of them and all layers.
  Status AppendBlocks(DeviceKVCache& cache, std::span<const DeviceBlock* const> blocks);

  // Runtime::Prefill / PrefillFull / Extend. `capacity` reserves room for later tokens (0: just the prompt).
  StatusOr<CudaPrefillResult> Prefill(std::span<const BlockKV* const> blocks, std::span<const int32_t> final_tokens,
                                      const PrefillOptions& options = {}, int64_t capacity = 0);
  StatusOr<CudaPrefillResult> Prefill(std::span<const DeviceBlock* const> blocks,
                                      std::span<const int32_t> final_tokens, const PrefillOptions& options = {},
                                      int64_t capacity = 0);
  StatusOr<CudaPrefillResult> PrefillFull(std::span<const int32_t> tokens, const PrefillOptions& options = {},
                                          int64_t capacity = 0);
  StatusOr<std::vector<float>> Extend(DeviceKVCache& cache, std::span<const int32_t> tokens,
                                      const PrefillOptions& options = {});

  // Runtime::Decode, with the same token choice (the host Sampler; greedy argmax also runs on the device).
  // Each step after the first is one replay of a CUDA graph captured for this cache (options.decode_graphs).
  StatusOr<std::vector<int32_t>> Decode(DeviceKVCache& cache, std::span<const float> last_logits,
                                        const DecodeOptions& options);

  // Drops the cache's tokens from `length` on (keeping its memory): reuse of a prefix, or of the whole
  // allocation with 0. InvalidArgument if length is negative or past the cache's length.
  Status Truncate(DeviceKVCache& cache, int64_t length);

  // The cache's contents in the CPU runtime's format (fp32), for tests.
  StatusOr<KVCache> DownloadCache(const DeviceKVCache& cache);

  struct Impl;  // implementation detail (cuda_runtime.cc)

 private:
  CudaRuntime();
  Status CheckTokens(std::span<const int32_t> tokens) const;
  Status Reserve(DeviceKVCache& cache, int64_t capacity);
  StatusOr<std::vector<float>> ExtendImpl(DeviceKVCache& cache, std::span<const int32_t> tokens, bool all_logits);
  Status DecodeStep(DeviceKVCache& cache);
  std::unique_ptr<Impl> impl_;
};

}  // namespace blockkv::cuda
