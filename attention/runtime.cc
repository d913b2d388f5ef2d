#include "attention/runtime.h"

#include <algorithm>

#include "attention/cpu/forward.h"
#include "attention/cpu/parallel.h"
#include "attention/rope.h"

namespace blockkv {

StatusOr<std::unique_ptr<Runtime>> Runtime::Open(const std::string& model_dir,
                                                 const RuntimeOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Load(model_dir));
  return std::make_unique<Runtime>(std::shared_ptr<const Model>(std::move(model)), options);
}

Runtime::Runtime(std::shared_ptr<const Model> model, const RuntimeOptions& options)
    : model_(std::move(model)),
      options_(options),
      threads_(options.num_threads > 0 ? options.num_threads : cpu::DefaultThreads()),
      inv_freq_(ComputeInvFreq(model_->config().rope)) {}

KVCache Runtime::NewCache() const {
  KVCache c;
  c.num_layers = num_layers();
  c.kv_heads = kv_heads();
  c.head_dim = head_dim();
  c.k.resize(c.num_layers);
  c.v.resize(c.num_layers);
  return c;
}

Status Runtime::CheckTokens(std::span<const int32_t> tokens) const {
  if (tokens.empty()) return Status::InvalidArgument("no tokens given");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab_size()) {
      return Status::InvalidArgument("token " + std::to_string(i) + " has id " +
                                     std::to_string(tokens[i]) + ", outside the vocabulary [0, " +
                                     std::to_string(vocab_size()) + ")");
    }
  }
  return Status::OK();
}

Status Runtime::CheckCache(const KVCache& c) const {
  const size_t want = static_cast<size_t>(c.length) * config().kv_dim();
  bool ok = c.num_layers == num_layers() && c.kv_heads == kv_heads() && c.head_dim == head_dim() &&
            c.length >= 0 && c.k.size() == static_cast<size_t>(num_layers()) &&
            c.v.size() == static_cast<size_t>(num_layers());
  for (int l = 0; ok && l < num_layers(); ++l) ok = c.k[l].size() == want && c.v[l].size() == want;
  if (!ok) return Status::InvalidArgument("KV cache is not shaped for this model");
  return Status::OK();
}

Status Runtime::CheckLength(int64_t total) const {
  const auto& w = config().sliding_window;
  if (w && total > *w) {
    return Status::NotSupported(
        "sequence of " + std::to_string(total) + " tokens exceeds the model's sliding window of " +
        std::to_string(*w) + " tokens, which this runtime does not implement");
  }
  return Status::OK();
}

Status Runtime::AppendBlock(KVCache& cache, const BlockKV& block) const {
  RETURN_IF_ERROR(CheckCache(cache));
  const size_t want = static_cast<size_t>(block.tokens) * config().kv_dim();
  bool ok = block.k.size() == static_cast<size_t>(num_layers()) &&
            block.v.size() == static_cast<size_t>(num_layers());
  for (int l = 0; ok && l < num_layers(); ++l)
    ok = block.k[l].size() == want && block.v[l].size() == want;
  if (!ok) {
    return Status::InvalidArgument(
        "block of " + std::to_string(block.tokens) + " tokens does not have this model's " +
        std::to_string(num_layers()) + " layers of (tokens, " + std::to_string(kv_heads()) + ", " +
        std::to_string(head_dim()) + ") keys and values");
  }
  RETURN_IF_ERROR(CheckLength(cache.length + block.tokens));
  if (block.tokens == 0) return Status::OK();
  const RopeTable rope = BuildRopeTable(inv_freq_, cache.length, block.tokens);
  cpu::ParallelFor(num_layers(), 1, threads_, [&](int64_t begin, int64_t end) {
    for (int64_t l = begin; l < end; ++l) {
      std::vector<float>& k = cache.k[l];
      const size_t at = k.size();
      k.insert(k.end(), block.k[l].begin(), block.k[l].end());
      ApplyRope(rope, k.data() + at, block.tokens, kv_heads(), head_dim());
      cache.v[l].insert(cache.v[l].end(), block.v[l].begin(), block.v[l].end());
    }
  });
  cache.length += block.tokens;
  return Status::OK();
}

StatusOr<BlockKV> Runtime::EncodeBlock(std::span<const int32_t> tokens) const {
  RETURN_IF_ERROR(CheckTokens(tokens));
  RETURN_IF_ERROR(CheckLength(static_cast<int64_t>(tokens.size())));
  KVCache scratch = NewCache();
  BlockKV block;
  cpu::ForwardOutputs out;
  out.pre_rope = &block;
  cpu::Forward(*model_, inv_freq_, tokens, &scratch, out, threads_);
  return block;
}

StatusOr<std::vector<float>> Runtime::Extend(KVCache& cache, std::span<const int32_t> tokens,
                                             const PrefillOptions& options) const {
  RETURN_IF_ERROR(CheckCache(cache));
  RETURN_IF_ERROR(CheckTokens(tokens));
  RETURN_IF_ERROR(CheckLength(cache.length + static_cast<int64_t>(tokens.size())));
  std::vector<float> logits;
  cpu::ForwardOutputs out;
  out.logits = &logits;
  out.all_logits = options.all_logits;
  cpu::Forward(*model_, inv_freq_, tokens, &cache, out, threads_);
  return logits;
}

StatusOr<PrefillResult> Runtime::Prefill(std::span<const BlockKV* const> blocks,
                                         std::span<const int32_t> final_tokens,
                                         const PrefillOptions& options) const {
  RETURN_IF_ERROR(CheckTokens(final_tokens).WithContext("final block"));
  int64_t total = static_cast<int64_t>(final_tokens.size());
  for (size_t b = 0; b < blocks.size(); ++b) {
    if (blocks[b] == nullptr)
      return Status::InvalidArgument("block " + std::to_string(b) + " is null");
    total += blocks[b]->tokens;
  }
  RETURN_IF_ERROR(CheckLength(total));
  PrefillResult result;
  result.cache = NewCache();
  for (int l = 0; l < num_layers(); ++l) {
    result.cache.k[l].reserve(static_cast<size_t>(total) * config().kv_dim());
    result.cache.v[l].reserve(static_cast<size_t>(total) * config().kv_dim());
  }
  for (size_t b = 0; b < blocks.size(); ++b) {
    RETURN_IF_ERROR(
        AppendBlock(result.cache, *blocks[b]).WithContext("block " + std::to_string(b)));
  }
  ASSIGN_OR_RETURN(result.logits, Extend(result.cache, final_tokens, options));
  return result;
}

StatusOr<PrefillResult> Runtime::PrefillFull(std::span<const int32_t> tokens,
                                             const PrefillOptions& options) const {
  return Prefill({}, tokens, options);
}

StatusOr<std::vector<int32_t>> Runtime::Decode(KVCache& cache, std::span<const float> last_logits,
                                               const DecodeOptions& options) const {
  RETURN_IF_ERROR(CheckCache(cache));
  if (last_logits.size() != static_cast<size_t>(vocab_size())) {
    return Status::InvalidArgument("last_logits has " + std::to_string(last_logits.size()) +
                                   " values; the vocabulary has " + std::to_string(vocab_size()));
  }
  Sampler sampler(options.sampling);
  std::vector<int32_t> out;
  std::vector<float> logits(last_logits.begin(), last_logits.end());
  for (int step = 0; step < options.max_new_tokens; ++step) {
    const int32_t token = sampler.Next(logits);
    out.push_back(token);
    if (options.on_token) options.on_token(token);
    if (std::find(options.stop_token_ids.begin(), options.stop_token_ids.end(), token) !=
        options.stop_token_ids.end()) {
      break;
    }
    if (options.stop_requested && options.stop_requested()) break;
    if (step + 1 == options.max_new_tokens) break;
    const int32_t one[1] = {token};
    ASSIGN_OR_RETURN(logits, Extend(cache, one));
  }
  return out;
}

}  // namespace blockkv
