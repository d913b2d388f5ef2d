// The Block-Attention runtime: encode blocks, prefill a final block over stored blocks, decode.
//
// A prompt is a list of blocks; the last one is the final block (DESIGN §2). Every earlier block
// attends only to itself, causally, at positions 0 .. n-1, so EncodeBlock's pre-RoPE keys and
// values can be stored and reused at any offset. Prefill rotates each block's keys to its real
// positions (offset = total tokens of the blocks before it, in the order given) and runs the final
// block over all of them and causally over itself. PrefillFull is ordinary causal attention over
// the whole prompt: the baseline.
//
// This is the CPU backend: float32 arithmetic, GEMMs through OpenBLAS, attention on std::threads.
//
// Thread safety: a Runtime is immutable after construction; every method is const and may be called
// from several threads at once (each call uses its own scratch memory). A KVCache belongs to one
// caller.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "attention/kv_cache.h"
#include "attention/model.h"
#include "attention/model_config.h"
#include "attention/sampling.h"
#include "db/block_key.h"
#include "db/status.h"

namespace blockkv {

struct RuntimeOptions {
  // Threads for attention and elementwise loops (GEMMs use OpenBLAS's own pool, sized by
  // OPENBLAS_NUM_THREADS). 0 uses every hardware thread. Default: 0.
  int num_threads = 0;
};

struct PrefillOptions {
  // false: logits of the last position only, (vocab). true: logits of every final-block position
  // (final_tokens, vocab), row-major. Default: false.
  bool all_logits = false;
};

struct PrefillResult {
  std::vector<float> logits;  // see PrefillOptions::all_logits
  KVCache cache;  // every prompt token, keys rotated to their positions; ready for Decode
};

struct DecodeOptions {
  SamplingOptions sampling;  // Default: greedy
  // Tokens to generate at most. Default: 32.
  int max_new_tokens = 32;
  // Generation stops after emitting any of these (the stop token is included in the result).
  // Default: none.
  std::vector<int32_t> stop_token_ids;
  // Called with each token as soon as it is picked (on the decoding thread), e.g. to stream text out.
  // Default: none.
  std::function<void(int32_t)> on_token;
  // Asked after each token (after on_token): true ends generation there, the token kept. For stop strings
  // found in the decoded text, and for a client that went away. Default: none.
  std::function<bool()> stop_requested;
};

class Runtime {
 public:
  // Loads the model in `model_dir` (Model::Load; its errors).
  static StatusOr<std::unique_ptr<Runtime>> Open(const std::string& model_dir,
                                                 const RuntimeOptions& options = {});
  explicit Runtime(std::shared_ptr<const Model> model, const RuntimeOptions& options = {});

  const Model& model() const { return *model_; }
  const ModelConfig& config() const { return model_->config(); }
  const ModelFingerprint& fingerprint() const { return model_->fingerprint(); }
  int num_layers() const { return config().num_layers; }
  int kv_heads() const { return config().num_kv_heads; }
  int head_dim() const { return config().head_dim; }
  int vocab_size() const { return config().vocab_size; }

  // Encodes one non-final block with block-local causal attention at positions 0 .. n-1 and returns
  // each layer's pre-RoPE keys and values. Errors: InvalidArgument (no tokens, a token id outside
  // [0, vocab_size)), NotSupported (more tokens than the model's sliding window).
  StatusOr<BlockKV> EncodeBlock(std::span<const int32_t> tokens) const;

  // Prefills `final_tokens` over `blocks` (already encoded, in prompt order; block b sits at offset
  // sum of the token counts of blocks 0 .. b-1, the final block after all of them). Errors:
  // InvalidArgument (no final tokens, a bad token id, a null block, or a block whose layer count or
  // tensor sizes do not match this model — naming the block's index), NotSupported (the prompt is
  // longer than the sliding window).
  StatusOr<PrefillResult> Prefill(std::span<const BlockKV* const> blocks,
                                  std::span<const int32_t> final_tokens,
                                  const PrefillOptions& options = {}) const;

  // Ordinary causal prefill of the whole prompt (the baseline). The logits cover the last position,
  // or with all_logits every position of `tokens`. Errors as Prefill.
  StatusOr<PrefillResult> PrefillFull(std::span<const int32_t> tokens,
                                      const PrefillOptions& options = {}) const;

  // Appends `tokens` to `cache` (each attends to the whole cache and causally to the others) and
  // returns their logits as Prefill does. Errors: InvalidArgument (empty, bad token id, a cache not
  // shaped for this model), NotSupported (sliding window exceeded).
  StatusOr<std::vector<float>> Extend(KVCache& cache, std::span<const int32_t> tokens,
                                      const PrefillOptions& options = {}) const;

  // Generates up to max_new_tokens tokens. The first is chosen from `last_logits` (the logits of
  // the cache's last position, e.g. PrefillResult::logits); each further one after running the
  // previous one through the model. On return the cache holds the prompt and every generated token
  // but the last. Errors: InvalidArgument (last_logits not of vocab size, a cache not shaped for
  // this model), NotSupported (sliding window exceeded).
  StatusOr<std::vector<int32_t>> Decode(KVCache& cache, std::span<const float> last_logits,
                                        const DecodeOptions& options) const;

  // An empty cache shaped for this model.
  KVCache NewCache() const;

  // Rotates `block`'s keys to positions cache.length .. and appends them and its values to `cache`:
  // the re-encoding step of Prefill, exposed for engines that assemble a cache themselves. Errors
  // as Prefill.
  Status AppendBlock(KVCache& cache, const BlockKV& block) const;

 private:
  Status CheckTokens(std::span<const int32_t> tokens) const;
  Status CheckCache(const KVCache& cache) const;
  Status CheckLength(int64_t total) const;

  std::shared_ptr<const Model> model_;
  RuntimeOptions options_;
  int threads_;
  std::vector<float> inv_freq_;
};

}  // namespace blockkv
