// Engine: a model runtime and a block store together (DESIGN §5).
//
// For each non-final block of a prompt the engine computes its BlockId (model fingerprint + tokens)
// and resolves it: a hit is read from the store (read, decode, checksum, convert); a miss is encoded
// and, unless told not to, stored after the first token. Then the final block is prefilled over all
// blocks at their real offsets and tokens are decoded. On a backend that streams (CUDA), the hits are
// read layer by layer while the prefill runs; otherwise every layer of every hit is loaded first. Every
// step is timed.
//
// Tiers: with EngineOptions::gpu_tier_bytes (a backend with a device: CUDA) blocks are kept in device memory
// across requests, pre-RoPE in the runtime's storage type, and re-encoded in place at each prompt's offsets;
// with host_tier_bytes they are kept in host memory (pinned on CUDA, copied straight to the device layer by
// layer during the prefill). Each tier has a scan-resistant admission policy (attention/engine/tier.h). A
// block is resolved from the GPU tier, else the host tier, else the store, else encoded; each request's
// result names the source of every block. After the first token, blocks served from below are offered to
// each tier (built only if admitted). Whatever the source, the logits are bitwise the same: every tier holds
// exactly the values a store read gives.
//
// Thread safety: Run and Precompute may be called from any number of threads at once; requests run one
// at a time per engine (the backend holds one prefill's cache), and the tiers and metrics are shared
// safely. The Runtime and BlockStore it uses may be shared with other engines.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <memory>
#include <mutex>

#include "attention/engine/host_tier.h"
#include "attention/engine/tier.h"
#include "attention/engine/metrics.h"
#include "attention/model_backend.h"
#include "attention/runtime.h"
#include "db/block_store.h"

namespace blockkv {

using GpuTier = Tier<ResidentBlock>;

struct EngineOptions {
  // The dtype blocks are stored in. F32 keeps block mode exactly equal to the masked reference;
  // BF16 halves the bytes stored and loaded, and rounds keys and values to bf16 (fresh encodes are
  // rounded the same way, so a stored block and a freshly encoded one still give bitwise equal
  // logits). Default: F32.
  DType kv_dtype = DType::kF32;
  // Store blocks that were not found. Default: true.
  bool store_misses = true;
  // On a backend that streams (the CUDA one), read the hits layer by layer during the prefill instead of
  // loading every block first (ModelBackend::PrefillStreamed; the logits are the same). Default: true.
  bool stream_layers = true;
  // Bytes of host memory that keep blocks across requests (attention/engine/host_tier.h); 0: no host
  // tier. On the CUDA backend the whole budget is pinned once, when the engine is made. Default: 0.
  uint64_t host_tier_bytes = 0;
  // Bytes of device memory that keep blocks across requests (the GPU tier), on backends with a device
  // (ModelBackend::device_tier()); ignored elsewhere, and when stream_layers is false. Default: 0.
  uint64_t gpu_tier_bytes = 0;
  // The tiers' admission and eviction policy. Default: W-TinyLFU (attention/engine/cache_policy.h).
  CachePolicyKind tier_policy = CachePolicyKind::kTinyLfu;
};

struct PromptBlock {
  std::vector<int32_t> tokens;
  std::string name;  // optional passage id, recorded with the block when stored
};

enum class AttentionMode { kBlock, kFull };

struct EngineRequest {
  std::vector<PromptBlock> blocks;    // the non-final blocks, in prompt order
  std::vector<int32_t> final_tokens;  // the final block (question)
  AttentionMode mode = AttentionMode::kBlock;
  PrefillOptions prefill;  // all_logits: every final-block position
  DecodeOptions decode;    // max_new_tokens = 0: prefill only
};

// The whole prompt of `request` as one token sequence (blocks in order, then the final block); if
// `block_sizes` is given it receives each block's length, the final block's last (as BlockAttentionMask
// takes them).
std::vector<int32_t> FlattenPrompt(const EngineRequest& request,
                                   std::vector<int64_t>* block_sizes = nullptr);

// Milliseconds, from a steady clock.
struct EngineTiming {
  double lookup_ms = 0;  // block ids and store lookups
  double load_ms = 0;    // reading, decoding and converting the store hits' layers (streamed: summed over
                         // the reader threads, overlapping prefill_ms, which then includes the whole pass)
  double host_ms = 0;    // copying (converting) the host-tier hits' layers on the CPU (streamed: as load_ms;
                         // 0 for hits in pinned memory, which the device copies itself during the prefill)
  double gpu_ms = 0;     // device time re-encoding the GPU-tier hits into the prompt's cache (within prefill_ms)
  double encode_ms = 0;  // encoding the misses
  double prefill_ms =
      0;               // re-encoding positions and prefilling the final block (or the full prompt)
  double ttft_ms = 0;  // request start to the logits the first token is picked from
  double decode_ms =
      0;  // picking every generated token and running all but the last through the model
  double store_ms = 0;  // writing the misses to the store (after the first token; not in ttft)
  double admit_ms = 0;  // offering blocks to the tiers and building the admitted ones (after the first token
                        // and the decode; not in ttft)
  int hits = 0;         // blocks served from a tier or the store
  int misses = 0;       // blocks encoded
  int host_hits = 0;    // of hits, served from the host tier
  int gpu_hits = 0;     // of hits, served from the GPU tier
  uint64_t bytes_loaded = 0;  // raw bytes of the hits' K and V
  int prompt_tokens = 0;
  int generated_tokens = 0;
  bool streamed = false;      // the hits streamed in during the prefill (EngineOptions::stream_layers)
  double stream_wait_ms = 0;  // streamed: the prefill waiting for layers not yet read
};

// The timings as a JSON object, one field per member (the CLI's --json, the server's and the Python
// module's results).
nlohmann::json TimingToJson(const EngineTiming& t);

struct EngineResult {
  std::vector<int32_t> tokens;  // generated
  std::vector<float> logits;    // last position (vocab) or every final-block position (n × vocab)
  std::vector<BlockId> block_ids;
  std::vector<bool> block_hit;
  std::vector<BlockSource> block_source;  // where each block came from: gpu, host, store or encoded
  EngineTiming timing;
};

class Engine {
 public:
  // `runtime` and `store` must outlive the engine. `store` may be null for full-mode-only use (and
  // then block mode encodes every block).
  Engine(const Runtime* runtime, BlockStore* store, const EngineOptions& options = {});
  // The same over any backend (the CUDA one: attention/cuda/cuda_backend.h); `backend` must outlive the
  // engine and be used by no other engine at the same time (it holds the last prefill's cache).
  Engine(ModelBackend* backend, BlockStore* store, const EngineOptions& options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Answers one prompt. Errors: those of the runtime (bad tokens, sliding window), of the store
  // (I/O, Corruption naming the block: damaged data is never used), and InvalidArgument for a
  // stored block whose shape does not match the model.
  StatusOr<EngineResult> Run(const EngineRequest& request);

  // Precomputes one block: encodes and stores it unless present. Returns its id; *was_present
  // (optional) tells whether it was already stored.
  StatusOr<BlockId> Precompute(std::span<const int32_t> tokens, const std::string& name,
                               bool* was_present = nullptr);

  // Loads a stored block into `out`. NotFound if absent.
  Status Load(const BlockId& id, BlockKV* out, uint64_t* bytes = nullptr);

  // Counters and latency histograms of every request so far (thread-safe to read at any time).
  const EngineMetrics& metrics() const { return metrics_; }
  const HostTier& host_tier() const { return host_tier_; }
  const GpuTier& gpu_tier() const { return gpu_tier_; }
  // Whether the host tier lives in pinned memory that the device copies from directly.
  bool host_tier_pinned() const { return host_arena_ != nullptr; }

 private:
  Engine(ModelBackend* backend, BlockStore* store, const EngineOptions& options, std::unique_ptr<ModelBackend> owned);
  struct Request;  // one request's resolved blocks (engine.cc)
  StatusOr<EngineResult> RunLocked(const EngineRequest& request);
  // Layer `layer` of block i of the request in `dtype`, from the best copy it has at hand.
  Status BlockLayer(const Request& q, size_t i, uint32_t layer, DType dtype, void* k, void* v);
  // Offers the request's blocks served from below to the tiers (after the first token). A block the host
  // tier admits becomes q.host[i], the source of the GPU tier's copy.
  void Admit(Request& q);
  StatusOr<BlockKV> Encode(std::span<const int32_t> tokens);
  // InvalidArgument unless a stored block belongs to this model and has its shape.
  Status CheckMeta(const BlockId& id, const BlockMeta& m) const;
  // Load's reading and conversion, for a block whose metadata `m` was already read and checked.
  Status LoadLayers(const BlockId& id, const BlockMeta& m, BlockKV* out, uint64_t* bytes);
  Status Store(const BlockKV& kv, std::span<const int32_t> tokens, const std::string& name);

  std::unique_ptr<ModelBackend> owned_backend_;  // the CpuBackend of the Runtime constructor
  ModelBackend* backend_;
  BlockStore* store_;
  EngineOptions options_;
  EngineMetrics metrics_;
  std::unique_ptr<HostArena> host_arena_;  // the host tier's pinned memory (null: the heap); outlives it
  DType host_dtype_;                       // the dtype host-tier blocks are kept in
  HostTier host_tier_;
  GpuTier gpu_tier_;
  std::mutex run_mu_;  // one request at a time on the backend
};

}  // namespace blockkv
