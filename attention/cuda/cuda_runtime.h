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
#include <functional>
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
  // PrefillStreamed's defaults (StreamOptions): layers staged in pinned memory at once, and reader threads.
  int stream_slots = 4;
  int stream_readers = 2;
};

// CudaRuntime::PrefillStreamed's knobs and what it measured.
struct StreamOptions {
  int slots = 4;    // layers staged in pinned memory at once
  int readers = 2;  // reader threads (1 .. slots - 1)
};
struct StreamStats {
  double read_ms = 0;      // in the reader, summed over the reader threads
  double wait_ms = 0;      // the forward pass waiting for a layer not yet read
  size_t bytes = 0;        // copied to the device
  double device_ms = 0;    // PrefillSegments: device time re-encoding the device blocks into the cache
  size_t host_bytes = 0;   // PrefillSegments: of `bytes`, copied straight from pinned host memory
};

class DeviceBlock;

// One block of a prompt for CudaRuntime::PrefillSegments, in prompt order, and where its pre-RoPE keys and
// values come from: a device block (`device`), pinned host memory in the runtime's storage type (`host`:
// layer l's keys at host + l * host_layer_stride, its values host_value_offset bytes after them), or neither:
// the LayerReader, which writes the layers of all such blocks together, in prompt order.
struct PromptSegment {
  int64_t tokens = 0;
  const DeviceBlock* device = nullptr;
  const uint8_t* host = nullptr;
  size_t host_layer_stride = 0;
  size_t host_value_offset = 0;
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
  const CudaRuntimeOptions& options() const;
  Precision precision() const;
  std::string device_name() const;
  // Which attention kernels this process runs (attention/cuda/attention.cuh, AttnKernel): "wgmma (decode,
  // short-passage batches: mma.sync)" on an sm_90 device, "mma.sync" elsewhere or when
  // BLOCKKV_ATTN_KERNEL=mma.
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
  // A device block of `tokens` tokens whose layers `fill` writes on the host in the runtime's storage type
  // (token-major keys, then values). Errors: fill's; ResourceExhausted when the device is out of memory.
  using LayerFill = std::function<Status(int layer, void* k, void* v)>;
  StatusOr<std::unique_ptr<DeviceBlock>> UploadBlockRaw(uint32_t tokens, const LayerFill& fill);
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

  // Prefill over stored blocks streamed in layer by layer while the final block's forward pass runs
  // (DESIGN §5): `read(layer, k, v)` writes layer `layer` of every block, in prompt order and token-major
  // ((block_tokens, kv_heads, head_dim) values of the runtime's storage type: bf16 or fp16 as precision()),
  // pre-RoPE keys into pinned host memory `k` and values into `v`. Reader threads call it, a few layers
  // ahead; each layer is copied on a second stream and its keys rotated to their positions 0 ..
  // block_tokens - 1 just before that layer's attention, which waits for that layer only. The result
  // equals Prefill over the same blocks (bit for bit). A reader's error ends the pass and is returned.
  // `stream` null: CudaRuntimeOptions' stream_slots and stream_readers.
  using LayerReader = std::function<Status(int layer, void* k, void* v)>;
  StatusOr<CudaPrefillResult> PrefillStreamed(int64_t block_tokens, const LayerReader& read,
                                              std::span<const int32_t> final_tokens,
                                              const PrefillOptions& options = {}, int64_t capacity = 0,
                                              const StreamOptions* stream = nullptr, StreamStats* stats = nullptr);
  // The general form of both: each block from where it lives (PromptSegment). Device blocks are re-encoded
  // into the cache with one launch before the pass; every other block arrives layer by layer during it (read
  // ones through `read`, host ones copied straight from pinned memory), its keys staged and rotated to their
  // rows just before that layer's attention. The result equals Prefill over the same blocks, bit for bit,
  // whatever mix of sources. `read` may be empty when no segment needs it. `reuse` (optional): a cache of an
  // earlier prompt whose memory is taken over (emptied, grown if too small) instead of allocating a new one,
  // which saves the allocation and freeing of every layer's buffers (milliseconds at 32K tokens); it is moved
  // into the result, or left as it was on an argument error.
  StatusOr<CudaPrefillResult> PrefillSegments(std::span<const PromptSegment> segments, const LayerReader& read,
                                              std::span<const int32_t> final_tokens,
                                              const PrefillOptions& options = {}, int64_t capacity = 0,
                                              const StreamOptions* stream = nullptr, StreamStats* stats = nullptr,
                                              std::unique_ptr<DeviceKVCache>* reuse = nullptr);
  StatusOr<std::vector<float>> Extend(DeviceKVCache& cache, std::span<const int32_t> tokens,
                                      const PrefillOptions& options = {});

  // Runtime::Decode, with the same token choice: greedy argmax, or the host Sampler's rule and generator run
  // on the device (sampling.cuh; the first token's too). Each step after the first is one replay of a CUDA
  // graph captured for this cache and sampling rule (options.decode_graphs): forward, token choice, advance.
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
  // before_attention: ForwardArgs::before_attention (the pass then runs eagerly, never captured).
  StatusOr<std::vector<float>> ExtendImpl(DeviceKVCache& cache, std::span<const int32_t> tokens, bool all_logits,
                                          const std::function<Status(int)>* before_attention = nullptr);
  Status DecodeStep(DeviceKVCache& cache, const SamplingOptions& sampling);
  std::unique_ptr<Impl> impl_;
};

}  // namespace blockkv::cuda
