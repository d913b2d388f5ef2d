#include "attention/model_backend.h"

#include <utility>

namespace blockkv {

StatusOr<BlockKV> CpuBackend::EncodeBlock(std::span<const int32_t> tokens) { return runtime_->EncodeBlock(tokens); }

StatusOr<std::vector<float>> CpuBackend::Prefill(std::span<const BlockKV* const> blocks,
                                                 std::span<const int32_t> final_tokens,
                                                 const PrefillOptions& options) {
  have_cache_ = false;
  ASSIGN_OR_RETURN(PrefillResult r, runtime_->Prefill(blocks, final_tokens, options));
  cache_ = std::move(r.cache);
  have_cache_ = true;
  return std::move(r.logits);
}

StatusOr<std::vector<float>> CpuBackend::PrefillFull(std::span<const int32_t> tokens, const PrefillOptions& options) {
  have_cache_ = false;
  ASSIGN_OR_RETURN(PrefillResult r, runtime_->PrefillFull(tokens, options));
  cache_ = std::move(r.cache);
  have_cache_ = true;
  return std::move(r.logits);
}

StatusOr<std::vector<int32_t>> CpuBackend::Decode(std::span<const float> last_logits, const DecodeOptions& options) {
  if (!have_cache_) return Status::InvalidArgument("decode before any prefill");
  return runtime_->Decode(cache_, last_logits, options);
}

}  // namespace blockkv
