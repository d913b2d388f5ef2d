#include "attention/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

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

namespace {

// The GPU tier's blocks on this backend: a DeviceBlock of the runtime's storage type.
class CudaResidentBlock final : public ResidentBlock {
 public:
  explicit CudaResidentBlock(std::unique_ptr<DeviceBlock> block) : block_(std::move(block)) {}
  uint32_t tokens() const override { return block_->tokens(); }
  uint64_t bytes() const override { return block_->bytes(); }
  const DeviceBlock& block() const { return *block_; }

 private:
  std::unique_ptr<DeviceBlock> block_;
};

}  // namespace

DType CudaBackend::stream_dtype() const {
  return rt_->precision() == Precision::kBF16 ? DType::kBF16 : DType::kF16;
}

StatusOr<std::unique_ptr<ResidentBlock>> CudaBackend::MakeResident(uint32_t tokens, const LayerFill& fill) {
  ASSIGN_OR_RETURN(std::unique_ptr<DeviceBlock> block,
                   rt_->UploadBlockRaw(tokens, [&fill](int layer, void* k, void* v) {
                     return fill(static_cast<uint32_t>(layer), k, v);
                   }));
  return std::unique_ptr<ResidentBlock>(new CudaResidentBlock(std::move(block)));
}

void* CudaBackend::AllocateHostMemory(uint64_t bytes) {
  void* p = nullptr;
  if (cudaHostAlloc(&p, bytes, cudaHostAllocDefault) != cudaSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  return p;
}

void CudaBackend::FreeHostMemory(void* p) {
  if (p != nullptr) cudaFreeHost(p);
}

StatusOr<std::vector<float>> CudaBackend::PrefillStreamed(BlockLayerSource& source,
                                                          std::span<const BlockPlacement> placement,
                                                          std::span<const int32_t> final_tokens,
                                                          const PrefillOptions& options, StreamTiming* timing) {
  const DType dtype = stream_dtype();
  const CudaRuntime::LayerReader read = [&source, dtype](int layer, void* k, void* v) {
    return source.ReadLayer(static_cast<uint32_t>(layer), dtype, k, v);
  };
  std::vector<PromptSegment> segments;
  int64_t tokens = 0;
  if (placement.empty()) {
    segments.push_back({source.tokens()});
    tokens = source.tokens();
  }
  for (const BlockPlacement& p : placement) {
    PromptSegment s;
    s.tokens = p.tokens;
    if (p.resident != nullptr) {
      // Only this backend makes the resident blocks it is given (MakeResident).
      s.device = &static_cast<const CudaResidentBlock*>(p.resident)->block();
    } else if (p.host != nullptr) {
      s.host = p.host;
      s.host_layer_stride = 2 * p.tensor_bytes;
      s.host_value_offset = p.tensor_bytes;
    }
    segments.push_back(s);
    tokens += p.tokens;
  }
  StreamStats st;
  ASSIGN_OR_RETURN(CudaPrefillResult r,
                   rt_->PrefillSegments(segments, read, final_tokens, options,
                                        tokens + static_cast<int64_t>(final_tokens.size()) + kDecodeReserve, nullptr,
                                        &st, &cache_));
  if (timing != nullptr) *timing = {st.read_ms, st.wait_ms, st.device_ms, st.host_bytes};
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
