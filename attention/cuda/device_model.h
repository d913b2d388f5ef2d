// Internal to the CUDA backend: a model's weights in device memory, the forward pass's scratch buffers, and
// the forward pass itself (a sequence of launcher calls, layer by layer). Not thread-safe: one caller at
// a time (the CudaRuntime that owns it).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "attention/cuda/attention.cuh"
#include "attention/cuda/gemm.h"
#include "attention/cuda/precision.h"
#include "attention/model.h"
#include "attention/model_config.h"
#include "db/status.h"

namespace blockkv::cuda {

// A cudaMalloc'd buffer, freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { Reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr, o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      Reset();
      ptr_ = o.ptr_, bytes_ = o.bytes_;
      o.ptr_ = nullptr, o.bytes_ = 0;
    }
    return *this;
  }
  // Allocates `bytes` (dropping the old contents). ResourceExhausted when the device is full.
  Status Allocate(size_t bytes);
  // Grows to at least `bytes` (contents not kept); sets *grew when it reallocated.
  Status Reserve(size_t bytes, bool* grew = nullptr);
  void Reset();
  void* get() const { return ptr_; }
  template <typename U>
  U* as() const { return static_cast<U*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Device weights of one layer. Projections are fused: wqkv = [wq; wk; wv] (q_dim + 2 kv_dim, hidden) and
// wgu = [w_gate; w_up] (2 inter, hidden), all T; norms and biases fp32.
struct DeviceLayer {
  DeviceBuffer input_norm, post_norm;  // (hidden) fp32
  DeviceBuffer wqkv;                   // (q_dim + 2 kv_dim, hidden) T
  DeviceBuffer bqkv;                   // (q_dim + 2 kv_dim) fp32, or empty
  DeviceBuffer wo;                     // (hidden, q_dim) T
  DeviceBuffer bo;                     // (hidden) fp32, or empty
  DeviceBuffer wgu;                    // (2 inter, hidden) T
  DeviceBuffer wdown;                  // (hidden, inter) T
};

// One forward pass over n new tokens (see DeviceModel::Forward).
struct ForwardArgs {
  int64_t n = 0;
  const int32_t* ids = nullptr;  // (n) device token ids
  const int32_t* pos = nullptr;  // (n) device positions (RoPE, and cache rows when rows_at_pos)
  // Attention: the sequences of this pass (device) and their extent (attention.cuh).
  const AttnSeq* seqs = nullptr;
  int num_seqs = 1;
  int max_rows = 0;
  int max_keys = 0;
  int num_splits = 0;  // 0: chosen from the shape
  // Per layer: where the rotated keys and the values go, and what the attention reads: a cache
  // (rows_at_pos, rows indexed by position) or one scratch buffer of the n tokens (rows 0 .. n-1).
  std::vector<void*> k_dst, v_dst;
  bool rows_at_pos = true;
  // Per layer, optional: the pre-RoPE keys and the values of the n tokens, (n, kv_heads, head_dim) T.
  std::vector<void*> k_raw, v_raw;
  // Logits of the last `logits_rows` tokens into `logits` (logits_rows, vocab) fp32; 0 skips the head and,
  // with k_raw set, the last layer's attention and MLP.
  int64_t logits_rows = 0;
  float* logits = nullptr;
  // Optional: called on the host before layer l's attention is enqueued (the keys and values it reads must
  // be in place by then on the forward's stream). The streaming prefill delivers stored layers here.
  std::function<Status(int layer)> before_attention;
};

class DeviceModel {
 public:
  // Uploads `model`'s weights converted to `precision`.
  static StatusOr<std::unique_ptr<DeviceModel>> FromModel(const Model& model, Precision precision, cudaStream_t stream);
  // Random weights generated on the device with the synthetic generator's scales (attention/synthetic_model.h);
  // no host copy of the weights is ever made.
  static StatusOr<std::unique_ptr<DeviceModel>> Random(const ModelConfig& config, uint64_t seed, Precision precision,
                                                       cudaStream_t stream);

  const ModelConfig& config() const { return config_; }
  Precision precision() const { return precision_; }
  size_t elem_bytes() const { return 2; }
  int sm_count() const { return sm_count_; }
  const float* inv_freq() const { return inv_freq_.as<float>(); }
  int rotary_dim() const { return config_.rope.rotary_dim; }
  cudaStream_t stream() const { return stream_; }

  // Sizes the scratch buffers for passes of up to `n` tokens, `logits_rows` logit rows and an attention
  // split workspace of `attn_floats`. Bumps scratch_generation() whenever a buffer moves (captured CUDA
  // graphs hold the old addresses).
  Status ReserveScratch(int64_t n, int64_t logits_rows, size_t attn_floats);
  uint64_t scratch_generation() const { return scratch_generation_; }

  // The forward pass. Scratch must already hold n tokens (ReserveScratch). Enqueued on stream(); no sync.
  Status Forward(const ForwardArgs& a);

 private:
  DeviceModel(const ModelConfig& config, Precision precision, cudaStream_t stream);
  Status Init();

  ModelConfig config_;
  Precision precision_;
  cudaStream_t stream_;
  int sm_count_ = 0;
  std::unique_ptr<Gemm> gemm_;
  DeviceBuffer embed_, lm_head_, final_norm_, inv_freq_;  // (vocab, hidden) T ×2 (lm_head_ empty if tied)
  std::vector<DeviceLayer> layers_;

  // Scratch: x (n, hidden) fp32 residual; xn (n, hidden) T; qkv (n, q+2kv) T; q, attn (n, q_dim) T;
  // gu (n, 2 inter) T; h (n, inter) T; attention split workspace fp32.
  DeviceBuffer x_, xn_, qkv_, q_, attn_, gu_, h_, attn_ws_;
  int64_t scratch_tokens_ = 0;
  size_t attn_ws_floats_ = 0;
  uint64_t scratch_generation_ = 0;
};

}  // namespace blockkv::cuda
