#include "attention/cuda/cuda_backend.h"

#include "attention/model.h"

namespace blockkv::cuda {

StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Open(const std::string& model_dir,
                                                         const CudaRuntimeOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Load(model_dir));
  std::unique_ptr<CudaBackend> b(new CudaBackend());
  b->fingerprint_ = model->fingerprint();
  ASSIGN_OR_RETURN(b->owned_, CudaRuntime::Create(*model, options));
  b->rt_ = b->owned_.get();
  return b;
}

std::unique_ptr<CudaBackend> CudaBackend::Borrow(CudaRuntime* runtime, const ModelFingerprint& fingerprint) {
  std::unique_ptr<CudaBackend> b(new CudaBackend());
  b->rt_ = runtime;
  b->fingerprint_ = fingerprint;
  return b;
}

StatusOr<BlockKV> CudaBackend::EncodeBlock(std::span<const int32_t> tokens) { return rt_->EncodeBlock(tokens); }

StatusOr<std::vector<float>> CudaBackend::Prefill(std::span<const BlockKV* const> blocks,
                                                  std::span<const int32_t> final_tokens,
                                                  const PrefillOptions& options) {
  cache_.reset();
  int64_t total = static_cast<int64_t>(final_tokens.size());
  for (const BlockKV* b : blocks) total += b == nullptr ? 0 : b->tokens;
  ASSIGN_OR_RETURN(CudaPrefillResult r, rt_->Prefill(blocks, final_tokens, options, total + kDecodeReserve));
  cache_ = std::move(r.cache);
  return std::move(r.logits);
}

StatusOr<std::vector<float>> CudaBackend::PrefillStreamed(BlockLayerSource& source,
                                                          std::span<const int32_t> final_tokens,
                                                          const PrefillOptions& options, StreamTiming* timing) {
  cache_.reset();
  const DType dtype = rt_->precision() == Precision::kBF16 ? DType::kBF16 : DType::kF16;
  const int64_t tokens = source.tokens();
  const CudaRuntime::LayerReader read = [&source, dtype](int layer, void* k, void* v) {
    return source.ReadLayer(static_cast<uint32_t>(layer), dtype, k, v);
  };
  StreamStats st;
  ASSIGN_OR_RETURN(CudaPrefillResult r,
                   rt_->PrefillStreamed(tokens, read, final_tokens, options,
                                        tokens + static_cast<int64_t>(final_tokens.size()) + kDecodeReserve,
                                        nullptr, &st));
  if (timing != nullptr) *timing = {st.read_ms, st.wait_ms};
  cache_ = std::move(r.cache);
  return std::move(r.logits);
}

StatusOr<std::vector<float>> CudaBackend::PrefillFull(std::span<const int32_t> tokens,
                                                      const PrefillOptions& options) {
  cache_.reset();
  ASSIGN_OR_RETURN(CudaPrefillResult r,
                   rt_->PrefillFull(tokens, options, static_cast<int64_t>(tokens.size()) + kDecodeReserve));
  cache_ = std::move(r.cache);
  return std::move(r.logits);
}

StatusOr<std::vector<int32_t>> CudaBackend::Decode(std::span<const float> last_logits,
                                                   const DecodeOptions& options) {
  if (cache_ == nullptr) return Status::InvalidArgument("decode before any prefill");
  return rt_->Decode(*cache_, last_logits, options);
}

}  // namespace blockkv::cuda
